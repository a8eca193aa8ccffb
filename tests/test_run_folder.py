"""The run folder's owner: refusal to reuse, the lock, atomic writes, stale temp files."""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from vae_course.run_folder import (LOCK_NAME, RunFolder, RunFolderError, atomic_write_text, check_writable,
                                   open_run_folder, remove_stale_temp_files)


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


def test_stale_temp_files_are_removed_on_start(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".checkpoint.pt.k2j3.tmp", run / ".metrics.json.x9.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    (run / "notes.tmp").write_text("not hidden: not ours")
    assert sorted(remove_stale_temp_files(run)) == sorted(stale)
    assert [p.name for p in run.iterdir()] == ["notes.tmp"]
    stale[0].write_bytes(b"x")
    open_run_folder(run).release()
    assert not stale[0].exists()


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
