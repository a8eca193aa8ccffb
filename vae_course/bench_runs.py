"""The benchmark's runs, one per process: ``python -m vae_course.bench_runs --side usual|package|gemm``.

:mod:`vae_course.bench` starts each run of ``python -m vae_course bench`` as a
fresh child process running this module, which trains one side (or times the
GEMM floor, or profiles a few steps) and prints one line: ``BENCH_RECORD``
followed by its JSON record. Keeping every run in its own process means neither
side inherits the other's allocator, caches or threads, and the harness costs
the timed loop nothing.

The two sides (see :mod:`vae_course.bench` for the why):

* :func:`usual_side`: the canonical PyTorch example's recipe, written out plainly
  (:class:`ExampleVAE`, :func:`usual_loaders`, :func:`usual_recipe_epoch`);
* :func:`package_side`: :class:`vae_course.train.Trainer`, timed by the seconds
  it records itself in its history (nothing of it is patched).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from .data import torchvision_dataset
from .device import device_name
from .config import TrainConfig
from .train import Trainer

USUAL = "usual"
PACKAGE = "package"
GEMM = "gemm"
RECORD_MARK = "BENCH_RECORD "  # the child's one line of results on stdout starts with this
MLP_LAYERS = ((784, 400), (400, 20), (400, 20), (20, 400), (400, 784))  # (in, out) of fc1, fc21, fc22, fc3, fc4


# ---------------------------------------------------------------- the usual recipe
class ExampleVAE(nn.Module):
    """The VAE of the canonical PyTorch example (``pytorch/examples``, ``vae/main.py``),
    as written there: the decoder ends in a sigmoid and returns probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z: Tensor) -> Tensor:
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def example_loss(recon_x: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The example's ``loss_function``: BCE summed over pixels and the batch, plus the KL.

    Returns a scalar in nats for the whole batch (divide by the batch size for
    nats per example).
    """
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def usual_loaders(device: torch.device, batch_size: int = 128, limit_train: int | None = None,
                  limit_test: int | None = None) -> tuple[DataLoader, DataLoader]:
    """The example's loaders: ``ToTensor()`` per image inside a ``DataLoader``."""
    from torchvision import transforms

    kwargs: dict[str, Any] = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    train_ds = torchvision_dataset("mnist", train=True, transform=transforms.ToTensor())
    test_ds = torchvision_dataset("mnist", train=False, transform=transforms.ToTensor())
    if limit_train:
        train_ds = Subset(train_ds, range(min(limit_train, len(train_ds))))
    if limit_test:
        test_ds = Subset(test_ds, range(min(limit_test, len(test_ds))))
    return (DataLoader(train_ds, batch_size=batch_size, shuffle=True, **kwargs),
            DataLoader(test_ds, batch_size=batch_size, shuffle=False, **kwargs))


def usual_recipe_epoch(model: ExampleVAE, optimizer: torch.optim.Optimizer, loader: DataLoader,
                       device: torch.device) -> float:
    """One training epoch exactly as the example's ``train()``; returns the mean loss
    per example (nats)."""
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = example_loss(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(loader.dataset)


def usual_recipe_test(model: ExampleVAE, loader: DataLoader, device: torch.device) -> float:
    """The example's ``test()``: the mean test loss per example (nats)."""
    model.eval()
    test_loss = 0.0
    with torch.no_grad():
        for data, _ in loader:
            data = data.to(device)
            recon_batch, mu, logvar = model(data)
            test_loss += example_loss(recon_batch, data, mu, logvar).item()
    return test_loss / len(loader.dataset)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_usual(epochs: int, device: torch.device, seed: int, loaders: tuple[DataLoader, DataLoader],
              lr: float = 1e-3) -> dict[str, Any]:
    """Train the usual recipe for ``epochs`` epochs; per-epoch seconds and test losses."""
    train_loader, test_loader = loaders
    torch.manual_seed(seed)
    model = ExampleVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    seconds, cpu_seconds, losses, test_losses = [], [], [], []
    for _ in range(epochs):
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        losses.append(usual_recipe_epoch(model, optimizer, train_loader, device))
        _sync(device)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        test_losses.append(usual_recipe_test(model, test_loader, device))
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "train_loss": losses, "test_loss": test_losses,
            "images": len(train_loader.dataset)}


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class BenchSettings:
    """What both sides train with; one copy travels to every child process."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 1
    device: str = "cpu"  # resolved once by the parent: "cpu", "cuda" or "mps"
    threads: int = 1
    limit_train: int | None = None
    limit_test: int | None = None
    compile: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        for name in ("epochs", "batch_size", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: need a positive integer, got {value!r}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: need a positive integer (or None), got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr: need a positive number, got {self.lr!r}")

    def child_argv(self, side: str, profile_steps: int = 0) -> list[str]:
        """The arguments of ``python -m vae_course.bench_runs`` for one child."""
        argv = ["--side", side, "--epochs", str(self.epochs), "--batch-size", str(self.batch_size),
                "--lr", repr(self.lr), "--seed", str(self.seed), "--device", self.device,
                "--threads", str(self.threads)]
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None:
                argv += [f"--{name.replace('_', '-')}", str(getattr(self, name))]
        if self.compile:
            argv.append("--compile")
        if profile_steps:
            argv += ["--profile-steps", str(profile_steps)]
        return argv

    def train_config(self, **changes: Any) -> TrainConfig:
        """The trainer's configuration for these settings (canonical recipe: constant lr)."""
        fields = dict(model="vae", epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                      lr_schedule="constant", seed=self.seed, device=self.device, compile=self.compile,
                      limit_train=self.limit_train, limit_test=self.limit_test)
        fields.update(changes)
        return TrainConfig(**fields)


# ---------------------------------------------------------------- the two sides (in a child)
def usual_side(s: BenchSettings) -> dict[str, Any]:
    """One run of the usual recipe: per-epoch wall and CPU seconds, losses, images."""
    dev = torch.device(s.device)
    setup_start = time.perf_counter()
    loaders = usual_loaders(dev, s.batch_size, s.limit_train, s.limit_test)
    setup = time.perf_counter() - setup_start
    record = run_usual(s.epochs, dev, s.seed, loaders, s.lr)
    return {**record, "setup_seconds": setup}


def package_side(s: BenchSettings) -> dict[str, Any]:
    """One run of the package's trainer; its seconds are those the trainer itself records.

    ``cpu_seconds`` come from the history too, when the trainer records them
    (``None`` otherwise): the trainer is never patched.
    """
    setup_start = time.perf_counter()
    trainer = Trainer(config=s.train_config(), progress=False, log=None)
    setup = time.perf_counter() - setup_start
    history = trainer.fit()
    cpu = [h.get("cpu_seconds") for h in history]
    return {"seconds": [h["seconds"] for h in history],
            "cpu_seconds": None if any(c is None for c in cpu) else cpu,
            "train_loss": [h["loss"] for h in history], "test_loss": [h["test_loss"] for h in history],
            "images": len(trainer.data.train_x), "setup_seconds": setup}


def _images_in_epoch(s: BenchSettings) -> int:
    return min(s.limit_train, 60_000) if s.limit_train else 60_000  # MNIST has 60,000 training images


def gemm_floor(s: BenchSettings, epochs: int = 3) -> dict[str, Any]:
    """Seconds per epoch of the training step's matrix multiplies alone.

    Per step of batch B the MLP does, for each of its five layers ``W (out, in)``,
    ``x @ W.T`` (forward) and ``dy.T @ x`` (weight gradient), and ``dy @ W``
    (input gradient) for all but the first layer: 14 GEMMs, the same shapes as
    training, on random float32 tensors. No other step of training can be
    cheaper than this, so it is the floor the trainer is measured against.
    Returns the seconds of ``epochs`` whole epochs (median and min), and the
    GFLOP per epoch.
    """
    dev = torch.device(s.device)
    n = _images_in_epoch(s)
    sizes = [s.batch_size] * (n // s.batch_size) + ([n % s.batch_size] if n % s.batch_size else [])
    gen = torch.Generator().manual_seed(0)

    def tensors(b: int) -> list[tuple[Tensor, ...]]:
        out = []
        for fan_in, fan_out in MLP_LAYERS:
            w, x, dy = (torch.randn(*shape, generator=gen).to(dev)
                        for shape in ((fan_out, fan_in), (b, fan_in), (b, fan_out)))
            out.append((w, x, dy))
        return out

    by_size = {b: tensors(b) for b in set(sizes)}

    def step(layers: list[tuple[Tensor, ...]]) -> None:
        for i, (w, x, dy) in enumerate(layers):
            torch.mm(x, w.t())
            torch.mm(dy.t(), x)
            if i:  # the first layer's input is the data: no gradient
                torch.mm(dy, w)

    for b in by_size:  # warm-up: BLAS threads, allocations
        step(by_size[b])
    seconds = []
    for _ in range(epochs):
        _sync(dev)
        start = time.perf_counter()
        for b in sizes:
            step(by_size[b])
        _sync(dev)
        seconds.append(time.perf_counter() - start)
    flop = sum(2 * b * fi * fo * (3 if i else 2) for b in sizes for i, (fi, fo) in enumerate(MLP_LAYERS))
    return {"seconds": seconds, "seconds_median": statistics.median(seconds), "seconds_min": min(seconds),
            "gemms_per_step": 3 * len(MLP_LAYERS) - 1, "steps": len(sizes), "gflop_per_epoch": flop / 1e9}


# ---------------------------------------------------------------- the profile (in a child)
GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm")


def top_ops(prof: Any, limit: int = 15) -> dict[str, Any]:
    """The profile's operators sorted by self CPU time (ms, summed over calls).

    Returns ``{"total_self_cpu_ms", "gemm_share", "ops": [{"name", "calls",
    "self_cpu_ms", "share"}, ...]}``; ``share`` is the fraction of all self CPU
    time, ``gemm_share`` that of the matrix-multiply operators.
    """
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_us = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    gemm_us = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
    ops = [{"name": e.key, "calls": int(e.count), "self_cpu_ms": round(e.self_cpu_time_total / 1000, 3),
            "share": round(e.self_cpu_time_total / total_us, 4)} for e in events[:limit]]
    return {"total_self_cpu_ms": round(total_us / 1000, 3), "gemm_share": round(gemm_us / total_us, 4), "ops": ops}


def _profiler(dev: torch.device):
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    return profile(activities=activities)


def profile_side(side: str, s: BenchSettings, steps: int) -> dict[str, Any]:
    """``torch.profiler`` over one epoch of ``steps`` training steps of ``side``,
    after one unprofiled warm-up epoch of the same size.

    For the package side the profiled call is ``Trainer.fit`` (the public API),
    so the table also holds one evaluation of ``batch_size`` test images (about a
    third of one step's work); ``wall_ms_per_step`` is the trainer's own
    epoch time, which excludes it. Profiler overhead inflates every figure.
    """
    dev = torch.device(s.device)
    small = replace(s, epochs=1, limit_train=steps * s.batch_size, limit_test=s.batch_size)
    if side == USUAL:
        loaders = usual_loaders(dev, small.batch_size, small.limit_train, small.limit_test)
        torch.manual_seed(s.seed)
        model = ExampleVAE().to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
        usual_recipe_epoch(model, optimizer, loaders[0], dev)  # warm-up
        with _profiler(dev) as prof:
            _sync(dev)
            start = time.perf_counter()
            usual_recipe_epoch(model, optimizer, loaders[0], dev)
            _sync(dev)
            wall = time.perf_counter() - start
    else:
        Trainer(config=small.train_config(), progress=False, log=None).fit()  # warm-up
        trainer = Trainer(config=small.train_config(), progress=False, log=None)
        with _profiler(dev) as prof:
            wall = trainer.fit()[0]["seconds"]
    return {"side": side, "steps": steps, "wall_ms_per_step": round(wall * 1000 / steps, 3), **top_ops(prof)}


# ---------------------------------------------------------------- the child process
def _child_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vae_course.bench_runs",
                                description="One benchmark run in this process; prints one JSON line.")
    p.add_argument("--side", choices=(USUAL, PACKAGE, GEMM), required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--profile-steps", type=int, default=0, help="profile N steps instead of timing epochs")
    return p


def child_main(argv: list[str] | None = None) -> int:
    """Run one side in this process and print ``RECORD_MARK`` + its JSON record."""
    args = _child_parser().parse_args(argv)
    settings = BenchSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             device=args.device, threads=args.threads, limit_train=args.limit_train,
                             limit_test=args.limit_test, compile=args.compile)
    settings.validate()
    torch.set_num_threads(settings.threads)
    if args.side == GEMM:
        record = gemm_floor(settings)
    elif args.profile_steps:
        record = profile_side(args.side, settings, args.profile_steps)
    else:
        record = usual_side(settings) if args.side == USUAL else package_side(settings)
    record.update({"side": args.side, "threads": torch.get_num_threads(), "pid": os.getpid(),
                   "device": device_name(settings.device)})
    print(RECORD_MARK + json.dumps(record), flush=True)
    return 0



if __name__ == "__main__":
    sys.exit(child_main())
