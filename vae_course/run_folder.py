"""The one owner of a training run's folder (``--out``).

A run folder holds ``checkpoint.pt``, ``metrics.json``, two images, the run's
diary ``sessions.jsonl`` (:mod:`vae_course.run_log`) and, for a run with a
validation split, ``best.pt`` (the epoch with the lowest validation loss). Training
into it goes through :func:`open_run_folder`, which

* refuses a folder that already holds a run, unless the caller resumes it or
  asks to overwrite it (the default ``runs/latest`` is easy to reuse by accident);
* takes a lock (``fcntl.flock`` on ``.vae_course.lock``), so two runs on one
  folder cannot both write: the second fails at once, naming the first's pid.
  The lock file is opened without following a symbolic link and must be a
  regular file with one name (a link planted there could otherwise make the run
  overwrite a file outside ``--out``);
* removes the temporary files that a killed save left behind: only the ones the
  package itself names (``.vae_course-*.tmp``), never a ``.*.tmp`` of yours;
* checks the folder is writable *before* any training starts.

Every file in it is written with :func:`atomic_write_bytes`: a uniquely named
temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash leaves the old file or the new one, never half of one. The
diary alone is appended to, line by line, through no link.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import OneLineError

try:  # POSIX only; on Windows runs are simply not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".vae_course.lock"
BEST_NAME = "best.pt"  # the epoch with the lowest validation loss (a run with --val-size)
DIARY_NAME = "sessions.jsonl"  # when and where each part of the run trained (vae_course.run_log)
RUN_FILES = ("checkpoint.pt", "metrics.json", "samples.png", "reconstructions.png", BEST_NAME, DIARY_NAME)
# Every temporary file the package writes starts with this and ends with TEMP_SUFFIX,
# so cleaning up after a killed save can never touch a file the package did not make.
TEMP_PREFIX = ".vae_course-"
TEMP_SUFFIX = ".tmp"
# The names of earlier versions (".checkpoint.pt.<8 mkstemp characters>.tmp"): removed
# only when they match exactly, a run file's name and mkstemp's alphabet and length.
_LEGACY_TEMP = re.compile(r"\.(?:" + "|".join(re.escape(n) for n in RUN_FILES) + r")\.[a-z0-9_]{8}\.tmp\Z")


class RunFolderError(OneLineError, RuntimeError):
    """The run folder cannot be used: busy, already holding a run, or not writable."""


def temp_file(folder: str | os.PathLike, name: str) -> tuple[int, str]:
    """A new, uniquely named temporary file for ``name`` in ``folder``: ``(fd, path)``.

    Named ``.vae_course-<name>.<random>.tmp`` (see :data:`TEMP_PREFIX`), created
    with ``O_EXCL`` (never an existing file, never through a link), mode 0600.
    """
    return tempfile.mkstemp(dir=folder, prefix=f"{TEMP_PREFIX}{name}.", suffix=TEMP_SUFFIX)


def is_package_temp(name: str) -> bool:
    """True for the name of a temporary file this package writes (or earlier versions wrote)."""
    return (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)) or bool(_LEGACY_TEMP.match(name))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module doc); returns ``path``.

    The temporary file gets a unique name (:func:`temp_file`), so two writers
    never share one, and the usual permissions (0666 minus the umask).
    """
    path = Path(path)
    fd, tmp = temp_file(path.parent, path.name)
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


def keep_copy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy ``source`` to ``target`` atomically (a reader sees the old copy or the new, never half)."""
    return atomic_write_bytes(target, Path(source).read_bytes())


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed saves left in ``folder``; returns them.

    Only regular files named by the package (:func:`is_package_temp`); a link or
    a folder of that name is left alone. Call it only while holding the folder's
    lock: another run's live temporary file must not be deleted under it.
    """
    removed = []
    for tmp in Path(folder).iterdir():
        if not is_package_temp(tmp.name):
            continue
        try:
            if stat.S_ISREG(tmp.lstat().st_mode):
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


def check_writable(folder: str | os.PathLike) -> None:
    """Create ``folder`` if needed and prove a file can be written in it.

    Raises :class:`RunFolderError` naming the folder and the reason (read-only,
    no permission, full disk, a file in the way...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = temp_file(folder, "write-test")
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


def _open_lock_file(lock: Path) -> int:
    """Open (or create) the lock file for reading and writing; its descriptor.

    ``O_NOFOLLOW``: a symbolic link there is refused, not followed, so a run never
    writes its pid into a file outside the folder; ``O_NONBLOCK``: a FIFO cannot
    hang the open. Anything but a regular file with one name (a hard link would
    share its bytes with a file elsewhere) is refused with one line.
    """
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    fix = "delete it (it only marks a running run) and start again"
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP or lock.is_symlink():
            raise RunFolderError(f"--out: {lock} is a symbolic link, not the run's lock file; {fix}") from None
        raise RunFolderError(f"--out: cannot open the lock file {lock} ({err.strerror or err}); {fix}, "
                             f"or choose another --out") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        what = "has other names (hard links)" if stat.S_ISREG(info.st_mode) else "is not a regular file"
        raise RunFolderError(f"--out: the lock file {lock} {what}; {fix}")
    os.set_blocking(fd, True)
    return fd


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
        """Take the lock, or raise :class:`RunFolderError` naming the pid that holds it
        (or saying why the lock file cannot be one)."""
        if fcntl is None or self._file is not None:
            return self
        f = os.fdopen(_open_lock_file(self.path / LOCK_NAME), "r+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read(64).strip() or "unknown"
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
