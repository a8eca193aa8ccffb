"""``torchrun -m vae_course train`` on 2 gloo ranks (CPU) against 1 process (issue 15, item 3), and
``python -m vae_course launch`` (issue 23, class 7): one line and the ranks' exit code at the end.

Every run is a real subprocess: ``python -m torch.distributed.run --standalone
--nproc_per_node 2 -m vae_course train --device cpu ...`` on the first 2,000
MNIST training and 500 test images, one thread per rank, each bounded by a timeout.

Tolerances (float32 training; DDP adds the ranks' gradients in another order
than one process sums the batch's, so the runs agree up to float rounding):

* per-epoch training loss, reconstruction, KL and the test loss, 2 ranks with
  global batch B vs 1 process with batch B: relative 1e-5 (seen: about 3e-8
  after 2 epochs of 20 steps);
* the weights after those 2 epochs: max absolute difference 1e-4, a tenth of one
  Adam step at lr 1e-3 (seen: about 1e-6);
* 1 epoch on 2 ranks, then ``--resume`` to 2 epochs on 2 ranks vs 2 epochs in one
  go on 2 ranks: exactly equal (the same ranks add in the same order).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course_testing import ROOT, cli_env, history_without_timings, needs_mnist
from vae_course.checkpoint import load_checkpoint

pytestmark = needs_mnist

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ONE = [sys.executable]
DATA = ["--device", "cpu", "--limit-train", "2000", "--limit-test", "500", "--no-progress"]
# 5,000 test images: 3 evaluation batches of at most 2,000, so rank 0 evaluates two and rank 1 one
# (with 500 test images rank 0 would evaluate them all and the sharded evaluation would go untested).
SPLIT_TEST = ("--limit-test", "5000")
RUN_TIMEOUT_S = 300  # one run (two ranks share a loaded 2-core machine); a hang fails the test
STOP_TIMEOUT_S = 120  # from SIGTERM to torchrun gone (torchrun itself kills a rank 30 s after its SIGTERM)
REL_LOSS, ABS_WEIGHTS = 1e-5, 1e-4


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return cli_env(PYTHONPATH=path, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _train(launcher: list[str], out: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*launcher, "-m", "vae_course", "train", "--out", str(out), *DATA, *args],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.pt")["model_state"]


def _history(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """2 epochs at (global) batch 100: on 1 process and on 2 ranks."""
    root = tmp_path_factory.mktemp("torchrun")
    procs = {name: _train(launcher, root / name, "--epochs", "2", "--batch-size", "100", *SPLIT_TEST)
             for name, launcher in (("one", ONE), ("two", TORCHRUN))}
    return root, procs


def test_two_ranks_train_like_one_process(runs):
    """The same losses, test losses (each test image evaluated once, by one rank) and weights."""
    root, procs = runs
    one, two = _history(root / "one"), _history(root / "two")
    assert len(one) == len(two) == 2 and one[1]["loss"] < one[0]["loss"]  # it trains
    for a, b in zip(one, two):
        for key in ("loss", "recon", "kl", "test_loss", "test_recon", "test_kl", "test_elbo"):
            assert b[key] == pytest.approx(a[key], rel=REL_LOSS), key
        assert (a["lr"], a["beta"]) == (b["lr"], b["beta"])
    w1, w2 = _weights(root / "one"), _weights(root / "two")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < ABS_WEIGHTS
    # rank 0 alone prints and writes: one log, the images, no temporary files left
    assert procs["two"].stdout.count("Epoch 2/2") == 1 and "Generated new images successfully" in procs["two"].stdout
    assert sorted(p.name for p in (root / "two").iterdir() if not p.name.startswith(".")) == \
        ["checkpoint.pt", "metrics.json", "reconstructions.png", "samples.png", "sessions.jsonl"]


def test_uneven_slices_keep_the_mean_exact(tmp_path):
    """Batch 99 on 2001 images: slices of 50 and 49 images, and a last batch of one image
    that rank 1 has no share of. global_mean weights the slices, so the runs still agree."""
    args = ("--epochs", "1", "--batch-size", "99", "--limit-train", "2001")
    _train(ONE, tmp_path / "one", *args)
    _train(TORCHRUN, tmp_path / "two", *args)
    one, two = _history(tmp_path / "one")[0], _history(tmp_path / "two")[0]
    for key in ("loss", "recon", "kl", "test_loss"):
        assert two[key] == pytest.approx(one[key], rel=REL_LOSS), key
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < ABS_WEIGHTS


def test_resume_on_two_ranks_equals_one_go(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "resumed"
    _train(TORCHRUN, out, "--epochs", "1", "--batch-size", "100", *SPLIT_TEST)
    _train(TORCHRUN, out, "--epochs", "2", "--resume", *SPLIT_TEST)
    assert history_without_timings(_history(out)) == history_without_timings(_history(root / "two"))
    w_resumed, w_one_go = _weights(out), _weights(root / "two")
    assert all(torch.equal(w_resumed[k], w_one_go[k]) for k in w_one_go)


def _children(pid: int) -> dict[int, int]:
    """``{rank: pid}`` of the processes ``pid`` started, from /proc (the ranks of a torchrun)."""
    ranks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            env = (stat.parent / "environ").read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:  # the parent's pid is the 4th field, the 2nd after the name
            rank = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
            if rank:
                ranks[int(rank[0])] = int(stat.parent.name)
    return ranks


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks through /proc (Linux)")
def test_sigterm_to_one_rank_stops_both_with_one_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "stop"
    cmd = [*TORCHRUN, "-m", "vae_course", "train", "--out", str(out), *DATA, "--epochs", "5", "--batch-size", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=ROOT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (out / "metrics.json").is_file():  # epoch 1 is saved: the ranks are training epoch 2
            assert proc.poll() is None, f"torchrun ended before epoch 1 was saved: {proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.05)
        ranks = _children(proc.pid)
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[1], signal.SIGTERM)  # rank 1 only
        output, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:  # a hang: end torchrun and its ranks, then fail
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode != 0, output[-3000:]
    assert re.search(r"Interrupted (during|after) epoch \d \(SIGTERM\)", output), output[-3000:]  # rank 0 learned it
    # what plain torchrun shows (documented in train --help): its ChildFailedError, whose table gives
    # each rank's real exit code, 128 + 15
    assert "ChildFailedError" in output and proc.returncode == 1, output[-3000:]
    assert set(re.findall(r"exitcode\s*:\s*(-?\d+)", output)) == {"143"}, output[-3000:]
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name or p.suffix == ".tmp") == ["checkpoint.pt"]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["interrupted"] is True and 1 <= state["epoch"] < 5
    # rank 0's one line holds the command that continues the run: torchrun's own, pasted as printed
    resume = _resume_line(output)
    assert "torch.distributed.run" in resume and "--nproc_per_node 2" in resume, resume
    resumed = subprocess.run(["bash", "-c", resume], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             env=_env(), cwd=ROOT)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    history = _history(out)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]


def _resume_line(output: str) -> str:
    found = re.findall(r"Resume with: (.*)$", output, flags=re.M)
    assert len(found) == 1, output[-3000:]  # rank 0 alone says it, once
    return found[0]


# ---------------------------------------------------------------- `launch`: one line and the ranks' code
LAUNCH = [sys.executable, "-m", "vae_course", "launch", "--nproc-per-node", "2"]


def test_launch_turns_a_refusal_into_one_line_and_the_ranks_exit_code(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    p = subprocess.run([*LAUNCH, "train", "--out", str(blocker / "run"), *DATA, "--epochs", "1"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=_env(), cwd=ROOT)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "ChildFailedError" not in p.stderr, p.stderr[-3000:]
    # rank 0's reason, then the launcher's outcome; rank 1 stays quiet, torchrun's log is silenced
    assert len(lines) == 2 and lines[0].startswith("error: --out: cannot write to"), lines
    # every rank refuses the same folder; which one the launcher sees end first is the scheduler's choice
    assert re.match(r"launch: rank [01] failed \(exit code 1\)", lines[1]), lines


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="waits for the ranks through /proc (Linux)")
def test_launch_ctrl_c_saves_says_so_once_and_the_pasted_command_resumes(tmp_path):
    out = tmp_path / "my run"  # a space: the printed command must quote it
    cmd = [*LAUNCH, "train", "--out", str(out), *DATA, "--epochs", "5", "--batch-size", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (out / "metrics.json").is_file():  # epoch 1 is saved: the ranks are training epoch 2
            assert proc.poll() is None, f"launch ended before epoch 1 was saved: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the launcher and every rank
        stdout, stderr = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 130, stderr[-3000:]  # the interruption is not hidden
    assert "Traceback" not in stderr and "ChildFailedError" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("launch:") and "SIGINT" in lines[-1] and "exit code 130" in lines[-1], lines
    resume = _resume_line(stderr)
    assert " launch --nproc-per-node=2 " in resume, resume  # the same launcher, not plain torchrun
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["interrupted"] is True and 1 <= state["epoch"] < 5
    resumed = subprocess.run(["bash", "-c", resume], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                             env=_env(), cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [h["epoch"] for h in _history(out)] == [1, 2, 3, 4, 5]
