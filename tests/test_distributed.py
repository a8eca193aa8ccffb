"""vae_course.distributed: sharding, the no-op context, and real 2-process runs
under ``python -m torch.distributed.run`` (gloo on the CPU, tests/ddp_script.py).

Tolerances (float32 training, gradients averaged by DDP in a different order
of additions than one process sums them):

* per-epoch training loss, 2 processes x B/2 vs 1 process x B: relative 1e-6
  (seen: about 1e-9 after 2 epochs of 20 steps);
* weights after those 40 Adam steps: max absolute difference 1e-4, a tenth of
  one step of size lr = 1e-3 (seen: about 1e-6);
* sharded vs one-process evaluation of the same model: relative 1e-12 for the
  means (float64 sums in another order), 1e-9 for the standard error.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from course_testing import ROOT, cli_env
from vae_course.checkpoint import load_checkpoint
from vae_course.distributed import (DistContext, ElboTerms, StopSignals, all_reduce_sums, broadcast_flag,
                                    evaluate_sharded, global_mean, launched_by_torchrun, shard, shard_sizes,
                                    sharded_noise, wrap_model)
from vae_course.evaluate import evaluate_elbo
from vae_course.losses import bernoulli_nll, kl_divergence, reparameterize
from vae_course.models import VAE

SCRIPT = ROOT / "tests" / "ddp_script.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
RUN_TIMEOUT_S = 300  # one training run (two on a shared 2-core machine); a hang fails the test
STOP_TIMEOUT_S = 120  # from SIGTERM to both ranks gone


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return cli_env(PYTHONPATH=path, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=_env(), cwd=ROOT)


# ---------------------------------------------------------------- in one process
@pytest.mark.parametrize("n, world", [(128, 2), (127, 2), (100, 3), (2, 4), (0, 2), (5, 1)])
def test_shards_are_disjoint_and_cover_the_global_batch(n, world):
    batch = torch.arange(n)
    pieces = [shard(batch, r, world) for r in range(world)]
    assert [len(p) for p in pieces] == shard_sizes(n, world) and sum(shard_sizes(n, world)) == n
    assert torch.equal(torch.cat(pieces), batch)  # in order, nothing twice, nothing missing
    assert max(shard_sizes(n, world)) - min(shard_sizes(n, world)) <= 1


def test_shard_rejects_a_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        shard(torch.arange(4), 2, 2)


def test_without_torchrun_the_context_is_a_no_op():
    assert not launched_by_torchrun({}) and launched_by_torchrun({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"})
    ctx = DistContext.from_env("cpu", env={})
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed) == (0, 1, True, False)
    values = torch.tensor([1.0, 2.0, 6.0])
    assert global_mean(values, 3, ctx) == values.mean()
    with pytest.raises(ValueError, match="global_count"):
        global_mean(values, 6, ctx)
    sums = torch.tensor([1.5, 2.0], dtype=torch.float64)
    assert all_reduce_sums(sums, ctx) is sums and sums.tolist() == [1.5, 2.0]
    assert broadcast_flag(True, ctx) is True and broadcast_flag(False, ctx) is False
    model = VAE()
    assert wrap_model(model, ctx) is model
    with ctx.main_first():
        pass
    ctx.close()


@pytest.mark.parametrize("device, message", [("mps", "no Apple MPS backend"), ("cuda:1", "use --device cuda")])
def test_devices_torchrun_cannot_use(device, message):
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    with pytest.raises(ValueError, match=message):
        DistContext.from_env(device, env=env)


def test_one_process_draws_what_reparameterize_draws():
    """With one process the sharded noise and ElboTerms reproduce the trainer's
    numbers exactly (reparameterize's draw from the default generator)."""
    torch.manual_seed(0)
    model, x = VAE(), torch.rand(16, 1, 28, 28)
    ctx = DistContext.local("cpu")
    torch.manual_seed(5)
    recon, kl = ElboTerms(model)(x, sharded_noise(16, model.latent_dim, ctx))
    torch.manual_seed(5)
    mu, logvar = model.encode(x)
    expected = bernoulli_nll(model.decode(reparameterize(mu, logvar)), x)
    assert torch.equal(recon, expected) and torch.equal(kl, kl_divergence(mu, logvar))


def test_sharded_evaluation_on_one_process_equals_evaluate_elbo(mnist_small):
    torch.manual_seed(0)
    model = VAE()
    x, y = mnist_small.test_x, mnist_small.test_y
    ours = evaluate_sharded(model, x, y, DistContext.local("cpu"), beta=2.0, batch_size=128)
    reference = evaluate_elbo(model, x, y, beta=2.0, batch_size=128)
    assert ours["n"] == len(x)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, rel=1e-9 if key == "elbo_stderr" else 1e-12), key


def test_stop_signals_become_a_flag():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        assert not stop.raised
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not stop.raised and time.monotonic() < deadline:  # the handler runs between bytecodes
            time.sleep(0.01)
        assert stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


# ---------------------------------------------------------------- two real processes
@pytest.fixture(scope="module")
def one_and_two(mnist_small, tmp_path_factory):
    """The same 2-epoch run on 1 process (batch 100) and on 2 (global batch 100, 50 each)."""
    out = tmp_path_factory.mktemp("ddp")
    results = {}
    for name, launcher in (("one", [sys.executable]), ("two", TORCHRUN)):
        proc = _run([*launcher, str(SCRIPT), "--out", str(out / name), "--batch-size", "100"])
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        results[name] = json.loads((out / name / "result.json").read_text())
        results[name]["weights"] = torch.load(out / name / "weights.pt")
    return results


def test_two_processes_train_like_one(one_and_two):
    one, two = one_and_two["one"], one_and_two["two"]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["steps"] == two["steps"] == 40 and one["images_per_epoch"] == two["images_per_epoch"] == 2000
    assert len(one["losses"]) == 2 and two["losses"] == pytest.approx(one["losses"], rel=1e-6)
    assert one["losses"][1] < one["losses"][0]  # it trains
    diff = max((one["weights"][k] - two["weights"][k]).abs().max().item() for k in one["weights"])
    assert diff < 1e-4


@pytest.mark.parametrize("name", ["one", "two"])
def test_sharded_evaluation_equals_one_process_evaluation(one_and_two, name):
    r = one_and_two[name]
    sharded, single = r["sharded_eval"], r["single_eval"]
    assert sharded["n"] == 500  # every test image once: none skipped, none counted twice
    for key, value in single.items():
        assert sharded[key] == pytest.approx(value, rel=1e-9 if key == "elbo_stderr" else 1e-12), key
    assert math.isfinite(sharded["elbo"])


def test_sigterm_on_one_rank_stops_both(mnist_small, tmp_path):
    out = tmp_path / "stop"
    proc = subprocess.Popen([*TORCHRUN, str(SCRIPT), "--out", str(out), "--until-stopped"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(), cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        ready = [out / "ready_0", out / "ready_1"]
        while not all(p.is_file() and p.read_text() for p in ready):
            assert proc.poll() is None, f"stopped before training: {proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "the ranks never started training"
            time.sleep(0.2)
        os.kill(int(ready[1].read_text()), signal.SIGTERM)  # rank 1 only
        output, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:  # a hang: end the whole process group, then fail
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode != 0, output[-3000:]
    stopped = [json.loads((out / f"stopped_{r}.json").read_text()) for r in (0, 1)]
    assert stopped[0]["step"] == stopped[1]["step"] >= 1  # the same step on both ranks
    assert stopped[1]["signal"] == signal.SIGTERM and stopped[0]["signal"] is None  # rank 0 learned it
    assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint.pt"]  # one, no temp
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["interrupted"] and state["step"] == stopped[0]["step"]
