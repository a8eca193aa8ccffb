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
    # this run watched the test set, and its diary and cost come along
    assert r["test_read_during_training"] is True and r["val_elbo_per_epoch"] == []
    assert [e["event"] for e in r["sessions"]] == ["start", "finished"] and r["train_commits"]
    assert r["cost"]["train_cpu_seconds"] == round(sum(h["cpu_seconds"] for h in metrics["history"]), 1)
    assert r["cost"]["iwae_cpu_seconds"] == json.loads(evaluated.stdout)["iwae_cpu_seconds"]
    assert r["evaluated_weights"] == "the last epoch (checkpoint.pt)" and r["epochs_trained"] == 2


def _record_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("record_long_run", ROOT / "scripts" / "record_long_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_of_a_run_that_kept_the_test_set_unseen(tmp_path):
    """--keep-test-unseen: no test curve, the validation curve, best.pt evaluated, every session listed."""
    run = tmp_path / "run"
    common = ["--epochs", "3", "--limit-train", "600", "--val-size", "200", "--keep-test-unseen", "--out", str(run),
              "--no-progress"]
    assert run_cli("train", *common[:1], "2", *common[2:]).returncode == 0
    assert run_cli("train", *common, "--resume").returncode == 0
    evaluated = run_cli("evaluate", "--checkpoint", str(run / "best.pt"), "--iw-samples", "2", "--limit-test", "30",
                        "--device", "cpu", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    r = _record_script().record(run, json.loads(evaluated.stdout), "python -m vae_course train", None)
    history = json.loads((run / "metrics.json").read_text())["history"]
    best = min(history, key=lambda h: h["val_loss"])
    assert r["test_read_during_training"] is False and "test_elbo_per_epoch_full_test_set" not in r
    assert r["val_elbo_per_epoch"] == [round(h["val_elbo"], 3) for h in history] and len(history) == 3
    assert r["epochs"] == best["epoch"] and r["epochs_trained"] == 3 and r["val_size"] == 200
    assert r["evaluated_weights"].endswith("(best.pt)")
    assert [(e["event"], e["epoch"]) for e in r["sessions"]] == [("start", 0), ("finished", 2), ("resume", 2),
                                                                 ("finished", 3)]
    assert r["cost"]["cpu_seconds_known_for_epochs"] == 3 and r["cost"]["train_cpu_seconds"] > 0


def test_record_refuses_a_run_trained_from_a_dirty_tree(tmp_path):
    from vae_course.run_log import append_event

    script = _record_script()
    run = script.ROOT / "runs" / f"test-dirty-{os.getpid()}"  # inside the checkout, as a committed record needs
    run.mkdir(parents=True)
    try:
        append_event(run, "start", 0, commit="0" * 40, dirty=False)
        assert not [p for p in script.refusals(run, f"python -m vae_course train --out {run}",
                                               f"python -m vae_course evaluate --checkpoint {run}/best.pt",
                                               False, False)]
        append_event(run, "resume", 7, commit="1" * 40, dirty=True)
        problems = script.refusals(run, f"python -m vae_course train --out {run}",
                                   f"python -m vae_course evaluate --checkpoint {run}/best.pt", False, False)
        assert len(problems) == 1 and "uncommitted changes (first at epoch 7" in problems[0]
        assert not script.refusals(run, f"python -m vae_course train --out {run}",
                                   f"python -m vae_course evaluate --checkpoint {run}/best.pt", False, True)
        wrong = script.refusals(run, f"python -m vae_course train --out {run}",
                                f"python -m vae_course evaluate --checkpoint {run}/other.pt", False, True)
        assert len(wrong) == 1 and "checkpoint.pt or" in wrong[0]
    finally:
        import shutil

        shutil.rmtree(run)
