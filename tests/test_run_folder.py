"""The run folder's owner: refusal to reuse, the lock, atomic writes, stale temp files.

Issue 23, class 5: the lock is opened without following links (a real symlink, FIFO and hard
link are planted), and clean-up removes only the temporary files the package names.
"""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from vae_course.run_folder import (LOCK_NAME, TEMP_PREFIX, TEMP_SUFFIX, RunFolder, RunFolderError, atomic_write_text,
                                   check_writable, is_package_temp, open_run_folder, remove_stale_temp_files)


def _fake_run(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint.pt").write_bytes(b"old run")
    (folder / "metrics.json").write_text("{}")


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    _fake_run(tmp_path / "run")
    with pytest.raises(RunFolderError, match="already holds a run; add --resume .* --overwrite"):
        open_run_folder(tmp_path / "run")
    open_run_folder(tmp_path / "run", resume=True).release()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == b"old run"
    open_run_folder(tmp_path / "run", overwrite=True).release()
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(RunFolderError, match="--resume: no checkpoint at"):
        open_run_folder(tmp_path / "empty", resume=True)


def test_the_lock_keeps_a_second_owner_out_and_names_the_first(tmp_path):
    first = open_run_folder(tmp_path / "run")
    try:
        with pytest.raises(RunFolderError, match=f"in use by another training run \\(pid {os.getpid()}\\)"):
            RunFolder(tmp_path / "run").acquire()
        # another process is refused too
        code = ("import sys; from vae_course.run_folder import RunFolder, RunFolderError\n"
                "try: RunFolder(sys.argv[1]).acquire()\nexcept RunFolderError as e: print(e); sys.exit(3)")
        p = subprocess.run([os.sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
        assert p.returncode == 3 and f"pid {os.getpid()}" in p.stdout, p.stderr
    finally:
        first.release()
    RunFolder(tmp_path / "run").acquire().release()  # free again
    assert (tmp_path / "run" / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_stale_temp_files_are_removed_on_start_and_only_the_packages_own(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # what killed saves leave: the package's prefix, and the exact names of earlier versions
    stale = [run / f"{TEMP_PREFIX}checkpoint.pt.k2j3abcd{TEMP_SUFFIX}", run / f"{TEMP_PREFIX}metrics.json.x9{TEMP_SUFFIX}",
             run / ".checkpoint.pt.k2j3ab_9.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    # a user's files that merely look temporary: an editor's swap copy, notes, a near-miss name
    mine = {".notes.md.tmp": "my draft", "notes.tmp": "not hidden", ".checkpoint.pt.mine.tmp": "not mkstemp's",
            ".metrics.json.abcdefghi.tmp": "nine characters"}
    for name, text in mine.items():
        (run / name).write_text(text)
    (run / f"{TEMP_PREFIX}a-folder{TEMP_SUFFIX}").mkdir()  # not a regular file: left alone
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (run / f"{TEMP_PREFIX}link{TEMP_SUFFIX}").symlink_to(outside)
    assert sorted(remove_stale_temp_files(run)) == sorted(stale)
    for name, text in mine.items():
        assert (run / name).read_text() == text, name
    assert outside.read_text() == "keep me" and (run / f"{TEMP_PREFIX}link{TEMP_SUFFIX}").is_symlink()
    stale[0].write_bytes(b"x")
    open_run_folder(run).release()
    assert not stale[0].exists() and (run / ".notes.md.tmp").read_text() == "my draft"


def test_every_temporary_file_the_package_writes_carries_its_prefix(tmp_path, monkeypatch):
    """atomic writes and the writability probe use the prefix, so the clean-up above sees them."""
    seen = []
    real = os.replace

    def spy(src, dst, *a, **k):  # records the name; the real rename still happens
        seen.append(Path(src).name)
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "metrics.json", "{}")
    monkeypatch.undo()
    assert len(seen) == 1 and is_package_temp(seen[0]) and seen[0].startswith(f"{TEMP_PREFIX}metrics.json.")
    check_writable(tmp_path / "probe")  # its probe file is gone again, and was the package's
    assert list((tmp_path / "probe").iterdir()) == []


# ------------------------------------------------------------------ the lock file is the run's own
_PLANTED = "someone else's file\n"


def _refused_in_a_fresh_process(run: Path) -> subprocess.CompletedProcess:
    """Take the run folder's lock in a new interpreter, under a time limit."""
    code = ("import sys; from vae_course.run_folder import open_run_folder, RunFolderError\n"
            "try: open_run_folder(sys.argv[1]).release()\nexcept RunFolderError as e: print(e); sys.exit(3)")
    return subprocess.run([os.sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_a_symlinked_lock_is_refused_and_its_target_never_written(tmp_path):
    run, target = tmp_path / "run", tmp_path / "elsewhere" / "precious.txt"
    run.mkdir()
    target.parent.mkdir()
    target.write_text(_PLANTED)
    (run / LOCK_NAME).symlink_to(target)
    p = _refused_in_a_fresh_process(run)
    assert p.returncode == 3, p.stderr
    assert len(p.stdout.strip().splitlines()) == 1 and "symbolic link" in p.stdout and LOCK_NAME in p.stdout
    assert target.read_text() == _PLANTED  # not truncated, no pid written into it
    # a dangling link is refused too, and nothing is created where it points
    (run / LOCK_NAME).unlink()
    (run / LOCK_NAME).symlink_to(tmp_path / "nowhere" / "new.txt")
    assert _refused_in_a_fresh_process(run).returncode == 3
    assert not (tmp_path / "nowhere").exists()


def test_a_lock_that_is_a_fifo_or_a_hard_link_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / LOCK_NAME)  # opening a FIFO for writing could hang; it is refused at once
    p = _refused_in_a_fresh_process(run)
    assert p.returncode == 3 and "not a regular file" in p.stdout, p.stdout + p.stderr
    (run / LOCK_NAME).unlink()
    shared = tmp_path / "shared.txt"
    shared.write_text(_PLANTED)
    os.link(shared, run / LOCK_NAME)  # the same bytes under two names
    p = _refused_in_a_fresh_process(run)
    assert p.returncode == 3 and "hard links" in p.stdout, p.stdout + p.stderr
    assert shared.read_text() == _PLANTED


def test_a_symlinked_lock_stops_the_cli_in_one_line(tmp_path):
    """End to end: `train --out` on such a folder exits 1 with one line, before loading anything."""
    run, target = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    target.write_text(_PLANTED)
    (run / LOCK_NAME).symlink_to(target)
    p = subprocess.run([os.sys.executable, "-m", "vae_course", "train", "--out", str(run), "--epochs", "1"],
                       capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[1],
                       env={**os.environ, "VAE_COURSE_DATA": str(tmp_path / "no-data")})
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "symbolic link" in p.stderr and "Traceback" not in p.stderr
    assert target.read_text() == _PLANTED


def test_atomic_writes_from_many_threads_never_collide(tmp_path):
    target, errors = tmp_path / "metrics.json", []

    def writer(i: int) -> None:
        try:
            for j in range(50):
                atomic_write_text(target, f"{i} {j}\n" * 100)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    lines = target.read_text().splitlines()
    assert len(lines) == 100 and len(set(lines)) == 1  # one whole version, never a mixture
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_check_writable_names_the_folder_and_the_reason(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match=f"--out: cannot write to {blocker / 'run'} \\(Not a directory\\)"):
        check_writable(blocker / "run")
    check_writable(tmp_path / "new" / "deep")
    assert (tmp_path / "new" / "deep").is_dir() and list((tmp_path / "new" / "deep").iterdir()) == []
