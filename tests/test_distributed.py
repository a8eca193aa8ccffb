"""vae_course.distributed in one process: sharding, the no-op context, the sharded
objective and evaluation, the Trainer's refusals under torchrun.

The real multi-process runs (``torchrun -m vae_course train`` on 2 gloo ranks)
are in tests/test_torchrun_cli.py. Tolerance here: sharded vs one-process
evaluation of the same model, relative 1e-12 for the means (float64 sums in
another order), 1e-9 for the standard error.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from vae_course.distributed import (DistContext, ShardedObjective, agree_signal, all_reduce_sums, broadcast_flag,
                                    evaluate_sharded, global_mean, launched_by_torchrun, shard, shard_sizes,
                                    wrap_model)
from vae_course.evaluate import evaluate_elbo
from vae_course.losses import objective_terms
from vae_course.models import VAE
from vae_course.train import StopSignals, TrainConfig, Trainer


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
    assert agree_signal(None, ctx) is None and agree_signal(signal.SIGTERM, ctx) == signal.SIGTERM
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


def test_one_process_sharded_objective_is_objective_terms():
    """With one rank the sharded objective computes exactly what the trainer's
    objective computes (the same noise: the default generator's draw for the batch)."""
    torch.manual_seed(0)
    model, x = VAE(), torch.rand(16, 1, 28, 28)
    ctx = DistContext(rank=0, world_size=1, backend="gloo")  # no process group is needed for this
    torch.manual_seed(5)
    ours = ShardedObjective(model, ctx)(x)
    torch.manual_seed(5)
    expected = objective_terms(model, x)
    assert all(torch.equal(a, b) for a, b in zip(ours, expected))


def test_two_ranks_sharded_objective_slices_the_global_batch():
    """Rank r's terms are the rows of the one-process terms that its slice holds
    (each rank draws the whole batch's noise and keeps its rows)."""
    torch.manual_seed(0)
    model, x = VAE(), torch.rand(7, 1, 28, 28)
    torch.manual_seed(5)
    recon, kl, _ = objective_terms(model, x)
    for rank, rows in ((0, slice(0, 4)), (1, slice(4, 7))):
        torch.manual_seed(5)
        r_recon, r_kl, r_kl_loss = ShardedObjective(model, DistContext(rank=rank, world_size=2, backend="gloo"))(x)
        assert torch.allclose(r_recon, recon[rows], rtol=1e-6) and torch.allclose(r_kl, kl[rows], rtol=1e-6)
        assert torch.equal(r_kl_loss, r_kl)


def test_sharded_evaluation_on_one_process_equals_evaluate_elbo(mnist_small):
    torch.manual_seed(0)
    model = VAE()
    x, y = mnist_small.test_x, mnist_small.test_y
    ours = evaluate_sharded(model, x, y, DistContext.local("cpu"), beta=2.0, batch_size=128)
    reference = evaluate_elbo(model, x, y, beta=2.0, batch_size=128)
    assert ours["n"] == len(x)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, rel=1e-9 if key == "elbo_stderr" else 1e-12), key


def test_under_torchrun_a_second_signal_does_not_stop_at_once():
    """torchrun forwards a Ctrl-C that every rank already got: escalate=False only notes it."""
    with StopSignals(escalate=False) as stop:
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 10
            while not stop.raised and time.monotonic() < deadline:  # the handler runs between bytecodes
                time.sleep(0.01)
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM


@pytest.mark.parametrize("setting, message", [({"free_bits": 0.5}, "--free-bits 0.5: with 2 processes"),
                                              ({"compile": True}, "--compile: not supported under torchrun")])
def test_trainer_refuses_what_several_processes_cannot_run_exactly(setting, message):
    two_ranks = DistContext(rank=0, world_size=2, backend="gloo")  # refused before any collective
    with pytest.raises(ValueError, match=message):
        Trainer(TrainConfig(device="cpu", **setting), dist=two_ranks)
