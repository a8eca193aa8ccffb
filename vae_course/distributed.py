"""Training on several processes (GPUs or CPU cores) with ``torch.distributed``.

Launch any training script with PyTorch's own launcher, one process per GPU::

    torchrun --nproc_per_node 4 -m vae_course train ...          # one machine, 4 GPUs (NCCL)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-endpoint HOST:29500 -m vae_course train ...

``torchrun`` starts the processes and tells each its ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE`` through the environment; :class:`DistContext` reads them,
joins the process group (NCCL on GPUs, gloo on the CPU) and says which device
is this rank's. Without ``torchrun`` it is a no-op context (rank 0 of 1), so
the same code runs on one process unchanged.

How a step is split (data parallelism, *DistributedDataParallel*):

* every rank holds the whole dataset and draws the same permutation, so all
  ranks agree on each **global** batch of B images; :func:`shard` gives each
  rank its slice (sizes differ by at most one; they add up to B);
* the reparameterization noise is drawn for the global batch on every rank
  (the same seed gives the same numbers) and sharded the same way
  (:func:`sharded_noise`), so N processes compute exactly what one process
  computes for the whole batch, up to the order of float additions;
* each rank backpropagates :func:`global_mean` of its slice, and DDP averages
  the gradients across ranks: the result is the gradient of the mean over the
  global batch, as on one process with batch B;
* running sums (losses, counts) are added across ranks with
  :func:`all_reduce_sums`; evaluation splits the test set into disjoint slices
  (:func:`evaluate_sharded`), so no image is counted twice;
* a stop request (Ctrl-C, SIGTERM, SIGHUP) on *any* rank is shared with
  :func:`agree_signal` after every step, so all ranks stop after the same step
  and rank 0 alone writes the checkpoint.

:class:`vae_course.train.Trainer` does all of this when it is given a
distributed context (the CLI passes one under ``torchrun``); with one process
it runs exactly the one-process code.
"""
from __future__ import annotations

import datetime as dt
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .device import get_device
from .evaluate import EVAL_SEED
from .inference import batches, device_of, eval_mode
from .losses import bernoulli_nll, kl_divergence

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")  # set by torchrun for every process it starts


def launched_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """True when ``torchrun`` (``python -m torch.distributed.run``) started this process."""
    env = os.environ if env is None else env
    return all(name in env for name in TORCHRUN_VARS)


def _rank_device(preference: str, local_rank: int) -> torch.device:
    """This rank's device: GPU number ``LOCAL_RANK`` for ``auto``/``cuda``, else the CPU."""
    pref = (preference or "auto").lower()
    if pref.startswith("cuda:"):
        raise ValueError(f"device: {preference!r} names one GPU, but under torchrun each process takes GPU "
                         f"LOCAL_RANK; use --device cuda")
    if pref == "mps":
        raise ValueError("device: torch.distributed has no Apple MPS backend; use --device cpu")
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    get_device("cuda")  # a clear error when there is no GPU
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"device: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                         f"use --nproc_per_node {torch.cuda.device_count()} or fewer")
    return torch.device("cuda", local_rank)


@dataclass
class DistContext:
    """Who this process is among the ranks of a ``torchrun`` job, and its device.

    ``backend`` is ``None`` for the no-op context (one process, nothing
    initialized). Use as a context manager so the process group is destroyed
    on exit.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    local_world_size: int = 1  # processes on this machine (torchrun's --nproc_per_node)
    # A gloo group for small control messages (stop flags, barriers): on the CPU, so
    # agreeing on a flag never waits for the GPU. None: the default group is gloo already.
    control_group: Any = None

    @classmethod
    def local(cls, device: str = "auto") -> "DistContext":
        """The no-op context: rank 0 of 1 on ``device``."""
        return cls(device=get_device(device))

    @classmethod
    def from_env(cls, device: str = "auto", backend: str | None = None, timeout_s: float = 600.0,
                 env: Mapping[str, str] | None = None) -> "DistContext":
        """Join the ``torchrun`` job this process belongs to, or return :meth:`local`.

        Args:
            device: ``auto``/``cuda`` (GPU ``LOCAL_RANK``, NCCL) or ``cpu`` (gloo).
            backend: override the backend (``"gloo"`` or ``"nccl"``).
            timeout_s: how long a collective may wait for the other ranks (seconds)
                before failing instead of hanging.
            env: the environment to read (default ``os.environ``).
        """
        env = os.environ if env is None else env
        if not launched_by_torchrun(env):
            return cls.local(device)
        rank, local_rank, world = (int(env[name]) for name in TORCHRUN_VARS)
        dev = _rank_device(device, local_rank)
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        timeout = dt.timedelta(seconds=timeout_s)
        if not dist.is_initialized():
            dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
        control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
        return cls(rank=rank, local_rank=local_rank, world_size=world, device=dev, backend=backend,
                   local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)), control_group=control)

    @property
    def is_distributed(self) -> bool:
        """True inside a process group (even one of size 1)."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, writes checkpoints and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op on one process). On the CPU (gloo):
        it orders the ranks' host code (files written), not the GPU's work."""
        if self.is_distributed:
            dist.barrier(group=self.control_group)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. copies the dataset into the cache), the others after it."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def close(self) -> None:
        """Leave the process group (only if this context joined one)."""
        if self.is_distributed and dist.is_initialized():
            dist.destroy_process_group()

    def __enter__(self) -> "DistContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------- splitting a global batch
def shard_sizes(n: int, world_size: int) -> list[int]:
    """How many of ``n`` items each rank gets: the first ``n % world_size`` ranks one more."""
    if world_size < 1:
        raise ValueError(f"world_size: need at least 1, got {world_size}")
    return [n // world_size + (r < n % world_size) for r in range(world_size)]


def shard(batch: Tensor, rank: int, world_size: int) -> Tensor:
    """Rank ``rank``'s contiguous slice (along dim 0) of a global batch or index tensor.

    The slices of all ranks are disjoint, in order, and together exactly
    ``batch`` (sizes from :func:`shard_sizes`). A view, no copy.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: need 0 <= rank < world_size ({world_size}), got {rank}")
    return torch.tensor_split(batch, world_size)[rank]


def sharded_noise(global_batch: int, latent_dim: int, ctx: DistContext, dtype: torch.dtype = torch.float32,
                  generator: torch.Generator | None = None) -> Tensor:
    """This rank's slice of ``N(0, I)`` noise ``(global_batch, latent_dim)`` drawn for the whole batch.

    Every rank draws the same numbers (same seed, same calls), so the slices
    fit together into the noise one process would draw: with one process this
    is exactly ``reparameterize``'s draw (``torch.randn`` of the batch's shape
    from the default generator of ``ctx.device``). Costs ``global_batch *
    latent_dim`` random numbers per rank, nothing next to a step.
    """
    eps = torch.randn((global_batch, latent_dim), dtype=dtype, device=ctx.device, generator=generator)
    return shard(eps, ctx.rank, ctx.world_size)


def global_mean(local_values: Tensor, global_count: int, ctx: DistContext) -> Tensor:
    """What each rank backpropagates so that DDP's gradient *average* over ranks is the
    gradient of the mean over the global batch of ``global_count`` examples.

    DDP divides the summed gradients by ``world_size``, hence
    ``sum(local) * world_size / global_count``. On one process: ``local_values.mean()``.
    """
    if not ctx.is_distributed:
        if len(local_values) != global_count:
            raise ValueError(f"global_count: one process holds the whole batch ({len(local_values)}), "
                             f"got {global_count}")
        return local_values.mean()
    return local_values.sum() * (ctx.world_size / global_count)


# ---------------------------------------------------------------- collectives
def all_reduce_sums(tensor: Tensor, ctx: DistContext) -> Tensor:
    """Add ``tensor`` across all ranks, in place; returns it. A no-op on one process.

    The tensor must live on ``ctx.device`` (NCCL reduces GPU tensors only); use
    float64 for sums over many examples.
    """
    if ctx.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def _all_max(value: int, ctx: DistContext) -> int:
    """The largest ``value`` over all ranks, through the CPU control group (no GPU sync)."""
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.control_group)
    return int(t.item())


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is True on *any* rank.

    A collective: every rank must call it at the same step, or the ranks wait
    for each other until the process group's timeout.
    """
    if not ctx.is_distributed:
        return bool(flag)
    return bool(_all_max(1 if flag else 0, ctx))


def agree_signal(signum: int | None, ctx: DistContext) -> int | None:
    """The stop signal any rank received (the highest number if several), or ``None``.

    Every rank calls it after the same step (a collective); when it returns a
    signal, all ranks stop there, and each exits with ``128 + signal``, also
    the ranks that received nothing.
    """
    if not ctx.is_distributed:
        return signum
    return _all_max(int(signum or 0), ctx) or None


# ---------------------------------------------------------------- the model
def wrap_model(model: nn.Module, ctx: DistContext, **ddp_kwargs) -> nn.Module:
    """``DistributedDataParallel(model)`` inside a process group, else ``model`` itself.

    DDP copies rank 0's weights to every rank when it is built and, during
    ``backward``, averages the gradients across ranks. It only works through
    the wrapper's ``forward``: call the returned module, never ``model.encode``
    directly (see :class:`ShardedObjective`). Save ``model.state_dict()`` (the
    unwrapped model), so checkpoints are the same with or without DDP.
    """
    if not ctx.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)


class ShardedObjective(nn.Module):
    """:func:`vae_course.losses.objective_terms` on this rank's slice of a global batch.

    ``forward(x, y=None) -> (recon, kl, kl_for_loss)``, each ``(slice,)`` in nats,
    where ``x`` is the *global* batch ``(B, 1, 28, 28)`` (every rank cuts the same
    one) and the slice is :func:`shard`'s. The noise is :func:`sharded_noise`'s,
    ``z = mu + exp(logvar / 2) * eps``, so the ranks' slices together compute what
    one process computes for the whole batch. Being one module with a ``forward``,
    it is what DDP wraps (DDP averages gradients only through ``forward``). For a
    plain autoencoder the KL is zero. No free bits: their floor is on the batch
    average, which a slice does not know.
    """

    def __init__(self, model: nn.Module, ctx: DistContext) -> None:
        super().__init__()
        self.model = model
        self.ctx = ctx

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        rank, world = self.ctx.rank, self.ctx.world_size
        xs = shard(x, rank, world)
        ys = None if y is None else shard(y, rank, world)
        if not getattr(self.model, "is_variational", False):
            logits, _ = self.model(xs)
            zero = torch.zeros(len(xs), device=xs.device)
            return bernoulli_nll(logits, xs), zero, zero
        mu, logvar = self.model.encode(xs, ys)
        eps = sharded_noise(len(x), mu.shape[1], self.ctx, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # reparameterize's formula, with the global batch's noise
        kl = kl_divergence(mu, logvar)
        return bernoulli_nll(self.model.decode(z, ys), xs), kl, kl


# ---------------------------------------------------------------- evaluation
def _batch_terms(model: nn.Module, x: Tensor, y: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """As :func:`vae_course.evaluate.per_example_terms` does for one batch."""
    if getattr(model, "is_variational", False):
        mu, logvar = model.encode(x, y)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=gen)
        return bernoulli_nll(model.decode(mu + std * eps, y), x), kl_divergence(mu, logvar)
    return bernoulli_nll(model.decode(model.encode(x)), x), torch.zeros(len(x), device=x.device)


@torch.inference_mode()
def evaluate_sharded(model: nn.Module, x: Tensor, y: Tensor | None, ctx: DistContext, beta: float = 1.0,
                     batch_size: int = 2000, seed: int = EVAL_SEED) -> dict[str, float]:
    """:func:`vae_course.evaluate.evaluate_elbo` with the test set split across ranks.

    Rank r takes a contiguous block of whole batches; every image is evaluated
    by exactly one rank and the sums (and the count) are added across ranks.
    The noise matches the one-process evaluation draw for draw: a rank first
    replays (draws and discards) the noise of the batches before its block, a
    ``(batch, latent_dim)`` draw each. So the result equals ``evaluate_elbo``
    up to the order of float64 additions. Every rank gets the same dict:
    ``loss``, ``recon``, ``kl``, ``elbo``, ``elbo_stderr`` (nats per example)
    and ``n`` (images evaluated, all ranks together).
    """
    device = device_of(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    n_batches = math.ceil(len(x) / batch_size)
    mine = shard(torch.arange(n_batches), ctx.rank, ctx.world_size).tolist()
    # count, recon, kl, loss, elbo, elbo^2: summed in float64
    sums = torch.zeros(6, dtype=torch.float64, device=ctx.device)
    with eval_mode(model):
        for b, (xb, yb) in enumerate(batches(x, y, batch_size, device)):
            if not mine or b > mine[-1]:
                break
            if b < mine[0]:
                if getattr(model, "is_variational", False):  # replay the noise of a batch another rank evaluates
                    dtype = next(model.parameters()).dtype
                    torch.randn((len(xb), model.latent_dim), dtype=dtype, device=device, generator=gen)
                continue
            recon, kl = _batch_terms(model, xb, yb, gen)
            elbo = (-(recon + kl)).double()
            sums += torch.stack((torch.tensor(float(len(xb)), dtype=torch.float64, device=device),
                                 recon.double().sum(), kl.double().sum(), (recon + beta * kl).double().sum(),
                                 elbo.sum(), (elbo * elbo).sum())).to(ctx.device)
    count, recon_s, kl_s, loss_s, elbo_s, elbo_sq = all_reduce_sums(sums, ctx).tolist()
    variance = (elbo_sq - elbo_s * elbo_s / count) / (count - 1) if count > 1 else float("nan")
    return {"loss": loss_s / count, "recon": recon_s / count, "kl": kl_s / count, "elbo": elbo_s / count,
            "elbo_stderr": math.sqrt(max(variance, 0.0) / count) if count > 1 else float("nan"), "n": int(count)}
