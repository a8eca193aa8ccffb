"""The one owner of a training run's folder (``--out``).

A run folder holds ``checkpoint.pt``, ``metrics.json`` and two images. Training
into it goes through :func:`open_run_folder`, which

* refuses a folder that already holds a run, unless the caller resumes it or
  asks to overwrite it (the default ``runs/latest`` is easy to reuse by accident);
* takes a lock (``fcntl.flock`` on ``.vae_course.lock``), so two runs on one
  folder cannot both write: the second fails at once, naming the first's pid;
* removes hidden temporary files (``.*.tmp``) that a killed save left behind;
* checks the folder is writable *before* any training starts.

Every file in it is written with :func:`atomic_write_bytes`: a uniquely named
temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash leaves the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

try:  # POSIX only; on Windows runs are simply not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".vae_course.lock"
RUN_FILES = ("checkpoint.pt", "metrics.json", "samples.png", "reconstructions.png")


class RunFolderError(RuntimeError):
    """The run folder cannot be used: busy, already holding a run, or not writable."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module doc); returns ``path``.

    The temporary file gets a unique name (``.<name>.<random>.tmp``), so two
    writers never share one, and the usual permissions (0666 minus the umask).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a failed write (e.g. a full disk) names no file: name the one we wrote
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the ``.*.tmp`` files that killed saves left in ``folder``; returns them.

    Call it only while holding the folder's lock: another run's live temporary
    file must not be deleted under it.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def check_writable(folder: str | os.PathLike) -> None:
    """Create ``folder`` if needed and prove a file can be written in it.

    Raises :class:`RunFolderError` naming the folder and the reason (read-only,
    no permission, full disk, a file in the way...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunFolderError(
            f"--out: cannot write to {folder} ({err.strerror or err}); choose another folder"
        ) from None


def holds_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` has a run's checkpoint or metrics in it."""
    folder = Path(folder)
    return (folder / "checkpoint.pt").exists() or (folder / "metrics.json").exists()


class RunFolder:
    """A locked run folder: ``with RunFolder(path): ...`` (or :meth:`acquire` / :meth:`release`).

    The lock is held by an open file descriptor, so the operating system drops
    it when the process dies, however it dies: a killed run never leaves a
    folder locked.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = None

    def acquire(self) -> "RunFolder":
        """Take the lock, or raise :class:`RunFolderError` naming the pid that holds it."""
        if fcntl is None or self._file is not None:
            return self
        lock = self.path / LOCK_NAME
        f = open(lock, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunFolderError(
                f"--out: {self.path} is in use by another training run (pid {holder}); wait for it to "
                f"finish, or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None

    def __enter__(self) -> "RunFolder":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def open_run_folder(path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> RunFolder:
    """Make ``path`` ready for a training run and return it locked.

    * ``resume``: the folder must hold ``checkpoint.pt``;
    * otherwise a folder holding a run is refused unless ``overwrite``, which
      deletes the old run's files (so no stale checkpoint can be mistaken for this
      run's "last good" one);
    * the folder must be writable (checked now, before any training), and the
      temporary files of killed saves are removed.
    """
    path = Path(path)
    if resume and not (path / "checkpoint.pt").is_file():
        raise RunFolderError(f"--resume: no checkpoint at {path / 'checkpoint.pt'}; train without --resume first")
    check_writable(path)
    folder = RunFolder(path).acquire()
    try:
        remove_stale_temp_files(path)
        if not resume and holds_run(path):
            if not overwrite:
                raise RunFolderError(
                    f"--out: {path} already holds a run; add --resume to continue it, --overwrite to replace "
                    f"it, or choose another --out"
                )
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
    except BaseException:
        folder.release()
        raise
    return folder
