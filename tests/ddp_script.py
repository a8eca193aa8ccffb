"""A small data-parallel training run for tests/test_distributed.py (not a test itself).

    python tests/ddp_script.py --out DIR                      # one process
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_script.py --out DIR

The package's VAE trains on the first 2,000 MNIST images (grayscale) with Adam
at a global batch of ``--batch-size``, using only :mod:`vae_course.distributed`
for the parallel parts. Rank 0 writes ``result.json`` (per-epoch training loss,
the sharded test evaluation and the one-process evaluation of the same model)
and ``weights.pt``.

With ``--until-stopped`` it trains until a SIGTERM/SIGINT reaches any rank:
each rank writes ``ready_<rank>`` (its pid) after its first step, checks the
stop flag with every other rank after every step, writes ``stopped_<rank>.json``
(the step it stopped after), rank 0 alone saves ``checkpoint.pt``, and every
rank exits with 128 + the signal number.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch

from vae_course.checkpoint import FORMAT_VERSION, save_checkpoint
from vae_course.data import load_data, tensor_batches
from vae_course.distributed import (DistContext, ElboTerms, StopSignals, all_reduce_sums, broadcast_flag,
                                    evaluate_sharded, global_mean, shard, sharded_noise, wrap_model)
from vae_course.evaluate import evaluate_elbo
from vae_course.models import VAE
from vae_course.rng import seed_everything

SEED = 1


def stop_now(ctx: DistContext, model: VAE, out: Path, step: int, epoch: int, signum: int | None) -> int:
    """Every rank has agreed to stop after ``step``: rank 0 saves, all report, all exit."""
    if ctx.is_main:
        state = {"format_version": FORMAT_VERSION, "model_name": "vae", "model_config": dict(model.config),
                 "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                 "epoch": epoch, "history": [], "interrupted": True, "step": step}
        save_checkpoint(state, out / "checkpoint.pt")
    (out / f"stopped_{ctx.rank}.json").write_text(json.dumps({"step": step, "signal": signum}))
    ctx.barrier()  # nobody leaves before rank 0's checkpoint is on disk
    return 128 + (signum or signal.SIGTERM)


def train(args: argparse.Namespace, ctx: DistContext) -> int:
    out = Path(args.out)
    with ctx.main_first():  # rank 0 fills the dataset cache, then the others read it
        data = load_data("mnist", limit_train=args.limit_train, limit_test=args.limit_test)
    seed_everything(SEED)
    model = VAE()
    objective = wrap_model(ElboTerms(model), ctx)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    order = torch.Generator().manual_seed(SEED)  # the same permutation on every rank
    losses, step = [], 0
    with StopSignals() as stop:
        for epoch in range(1, args.epochs + 1):
            sums = torch.zeros(2, dtype=torch.float64)  # loss summed over this rank's images, image count
            for x, _ in tensor_batches(data.train_x, data.train_y, args.batch_size, generator=order):
                recon, kl = objective(shard(x, ctx.rank, ctx.world_size), sharded_noise(len(x), model.latent_dim, ctx))
                loss = global_mean(recon + kl, len(x), ctx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums += torch.stack((((recon + kl).detach().double()).sum(), torch.tensor(float(len(recon)))))
                step += 1
                if args.until_stopped and step == 1:
                    (out / f"ready_{ctx.rank}").write_text(str(os.getpid()))
                if args.until_stopped and broadcast_flag(stop.raised, ctx):
                    return stop_now(ctx, model, out, step, epoch, stop.signum)
            total, count = all_reduce_sums(sums, ctx).tolist()
            losses.append(total / count)
    sharded = evaluate_sharded(model, data.test_x, data.test_y, ctx, batch_size=args.eval_batch_size)
    if ctx.is_main:
        single = evaluate_elbo(model, data.test_x, data.test_y, batch_size=args.eval_batch_size)
        result = {"world_size": ctx.world_size, "losses": losses, "sharded_eval": sharded, "single_eval": single,
                  "steps": step, "images_per_epoch": count}
        (out / "result.json").write_text(json.dumps(result))
        torch.save(model.state_dict(), out / "weights.pt")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--limit-train", type=int, default=2000)
    parser.add_argument("--limit-test", type=int, default=500)
    parser.add_argument("--eval-batch-size", type=int, default=100, help="several batches, so ranks split them")
    parser.add_argument("--until-stopped", action="store_true", help="train until a signal (epochs: 10,000)")
    args = parser.parse_args()
    if args.until_stopped:
        args.epochs = 10_000
    torch.set_num_threads(1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with DistContext.from_env("cpu", timeout_s=120) as ctx:
        return train(args, ctx)


if __name__ == "__main__":
    sys.exit(main())
