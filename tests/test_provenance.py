"""Provenance fields (commit, dirty flag, CPU, load, torch, date) and the script
that stamps a long run's results file with them."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_testing import ROOT, cli_env, run_cli
from vae_course import provenance

LINUX = Path("/proc/stat").is_file()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                   check=True, capture_output=True, timeout=30)


def test_git_commit_of_this_checkout():
    commit, dirty = provenance.git_commit()
    if commit is None:
        pytest.skip("not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and isinstance(dirty, bool)


def test_dirty_flag_follows_tracked_files_only(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "first")
    commit, dirty = provenance.git_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and dirty is False
    (tmp_path / "untracked.txt").write_text("new")
    assert provenance.git_commit(tmp_path) == (commit, False)  # untracked files change no result
    (tmp_path / "a.txt").write_text("two")
    assert provenance.git_commit(tmp_path) == (commit, True)


def test_outside_git_both_are_none(tmp_path):
    assert provenance.git_commit(tmp_path) == (None, None)


def test_machine_fields():
    assert isinstance(provenance.cpu_model(), str) and provenance.cpu_model()
    load = provenance.load_average()
    if hasattr(os, "getloadavg"):
        assert len(load) == 3 and all(x >= 0 for x in load)


@pytest.mark.skipif(not LINUX, reason="busy_cores reads /proc/stat")
def test_busy_cores_is_a_core_count():
    cores = provenance.busy_cores(0.2)
    assert 0 <= cores <= (os.cpu_count() or 1) + 1e-9


def test_date_is_utc_iso():
    when = dt.datetime.fromisoformat(provenance.utc_now())
    assert when.utcoffset() == dt.timedelta(0)


def test_collect_is_json_ready_and_complete():
    record = provenance.collect("cpu")
    for key in ("commit", "dirty", "date", "cpu_model", "cpu_count", "loadavg", "torch_version", "cuda_version",
                "cudnn_version", "threads", "device", "device_type"):
        assert key in record, key
    assert record["torch_version"] == str(torch.__version__) and record["device_type"] == "cpu"
    assert record["device"] == f"cpu ({torch.get_num_threads()} threads)"
    assert json.loads(json.dumps(record)) == record


def test_record_long_run_reads_the_checkpoint(cli_two_epochs, tmp_path):
    proc, run = cli_two_epochs
    assert proc.returncode == 0, proc.stderr
    evaluated = run_cli("evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--iw-samples", "2",
                        "--limit-test", "50", "--device", "cpu", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(evaluated.stdout)
    out = tmp_path / "long.json"
    env = cli_env(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "record_long_run.py"), "--run", str(run),
                           "--eval", str(eval_json), "--train-command", "python -m vae_course train --epochs 2",
                           "--decisions", "every setting fixed before training", "--decided-on-test", "no",
                           "--out", str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(r["seconds_per_epoch"]) == 2 and r["epochs"] == 2
    assert r["test_elbo_per_epoch_full_test_set"] == [round(h["test_elbo"], 3) for h in metrics["history"]]
    assert r["objective"].startswith("ELBO (beta = 1), Adam, lr 0.005 cosine, batch 128")
    assert r["commit"] == provenance.git_commit()[0] and r["machine"].startswith(provenance.cpu_model())
    assert r["decisions"] == "every setting fixed before training" and r["decided_on_test"] is False
