"""``python -m vae_course bench``: the usual PyTorch recipe against the package's trainer.

Both sides train the seed's MLP VAE (784-400-20) on grayscale MNIST with the
canonical PyTorch example's settings (batch 128, Adam with lr 1e-3, constant)
on the same device, with the same number of threads. What differs is only *how*
the work is fed to the machine:

* **the usual recipe** (:func:`usual_recipe_epoch`) is written out plainly, as
  ``pytorch/examples`` ``vae/main.py`` does it: a torchvision dataset whose
  ``ToTensor()`` runs once per image, a ``DataLoader`` (no worker processes on
  the CPU; one worker and pinned memory on a GPU, as the example does), a
  decoder ending in ``sigmoid``, ``F.binary_cross_entropy(reduction="sum")``,
  plain Adam and ``loss.item()`` after every step;
* **the package's trainer** (:class:`vae_course.train.Trainer`): the data lives
  on the device as one tensor, batches are cut from a permutation, the decoder
  returns logits, the Bernoulli term has its gradient written out (``sigmoid(l) - x``:
  ``losses.bernoulli_nll``), Adam is fused, and
  the loop reads the device only every few dozen steps.

The two run alternately (usual, package, package, usual, ...) for several
repeats, so a slow-down of the machine hits both alike. In every run the first
epoch is reported apart as a warm-up (allocations, caches, ``torch.compile``);
the table gives the *later* epochs' seconds (median, min, max), images per
second, the ratio of medians, and the test loss after the last epoch. Timings
never include evaluation or data loading. ``--json PATH`` writes everything,
with the command, commit, device, torch version and date, for the results page.

The benchmark is not a test: ``tests/test_bench.py`` runs a tiny one only to
check that it works, and never asserts a time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from .data import load_data, torchvision_dataset
from .device import device_name, get_device
from .train import TrainConfig, Trainer

USUAL = "usual"
PACKAGE = "package"
LABELS = {USUAL: "usual recipe (DataLoader + ToTensor)", PACKAGE: "vae_course trainer"}


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


def run_package(epochs: int, device: torch.device, seed: int, data, batch_size: int = 128, lr: float = 1e-3,
                compile: bool = False) -> dict[str, Any]:
    """Train with :class:`~vae_course.train.Trainer` (canonical settings); same record."""
    config = TrainConfig(model="vae", epochs=epochs, batch_size=batch_size, lr=lr, lr_schedule="constant",
                         seed=seed, device=str(device), compile=compile)
    trainer = Trainer(config=config, data=data, progress=False, log=None)
    cpu_seconds: list[float] = []
    run_epoch = trainer._run_epoch

    def timed_epoch(*args: Any, **kwargs: Any):  # CPU time of the training loop alone
        cpu_start = time.process_time()
        record = run_epoch(*args, **kwargs)
        cpu_seconds.append(time.process_time() - cpu_start)
        return record

    trainer._run_epoch = timed_epoch
    history = trainer.fit()
    return {"seconds": [h["seconds"] for h in history], "cpu_seconds": cpu_seconds,
            "train_loss": [h["loss"] for h in history], "test_loss": [h["test_loss"] for h in history],
            "images": len(data.train_x)}


# ---------------------------------------------------------------- the benchmark
def _git_commit() -> tuple[str | None, bool | None]:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Statistics over repeats: the first epoch of each run is the warm-up, the
    later epochs are the steady state. Seconds are wall-clock per epoch."""
    warmup = [r["seconds"][0] for r in runs]
    steady = [s for r in runs for s in r["seconds"][1:]] or warmup
    images = runs[0]["images"]
    median = statistics.median(steady)
    cpu_steady = [s for r in runs for s in r["cpu_seconds"][1:]] or [r["cpu_seconds"][0] for r in runs]
    return {
        "cpu_seconds_median": statistics.median(cpu_steady),
        "warmup_seconds": warmup,
        "steady_seconds": steady,
        "seconds_median": median,
        "seconds_min": min(steady),
        "seconds_max": max(steady),
        "images_per_second": images / median,
        "test_loss": [r["test_loss"][-1] for r in runs],
        "test_loss_median": statistics.median(r["test_loss"][-1] for r in runs),
        "runs": runs,
    }


def run_bench(epochs: int = 3, repeats: int = 3, device: str = "auto", threads: int | None = None,
              batch_size: int = 128, lr: float = 1e-3, seed: int = 1, limit_train: int | None = None,
              limit_test: int | None = None, compile: bool = False,
              log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run the benchmark and return its record (see the module docstring).

    Args:
        epochs: epochs per run (>= 2, so that at least one is not the warm-up).
        repeats: runs of each side, alternating which goes first.
        threads: ``torch.set_num_threads`` for both sides (default: torch's choice).
        limit_train, limit_test: use the first N images (quick checks only).
    Returns:
        a JSON-ready dict: settings, environment, per-side statistics, ``ratio``
        (usual median seconds per epoch / package median seconds per epoch).
    """
    if epochs < 2:
        raise ValueError(f"epochs: need at least 2 (the first is the warm-up), got {epochs}")
    if repeats < 1:
        raise ValueError(f"repeats: need at least 1, got {repeats}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads: need at least 1, got {threads}")
        torch.set_num_threads(threads)
    dev = get_device(device)
    say = log or (lambda _msg: None)
    load_start = _loadavg()
    setup_start = time.perf_counter()
    loaders = usual_loaders(dev, batch_size, limit_train, limit_test)
    usual_setup = time.perf_counter() - setup_start
    setup_start = time.perf_counter()
    data = load_data("mnist", "none", limit_train=limit_train, limit_test=limit_test, seed=seed, device=dev)
    package_setup = time.perf_counter() - setup_start
    runs: dict[str, list[dict[str, Any]]] = {USUAL: [], PACKAGE: []}
    order = [USUAL, PACKAGE]
    for repeat in range(repeats):
        for side in (order if repeat % 2 == 0 else order[::-1]):
            if side == USUAL:
                record = run_usual(epochs, dev, seed, loaders, lr)
            else:
                record = run_package(epochs, dev, seed, data, batch_size, lr, compile)
            runs[side].append(record)
            say(f"repeat {repeat + 1}/{repeats} {LABELS[side]:<38} seconds per epoch: "
                + " ".join(f"{s:.2f}" for s in record["seconds"])
                + f" | test loss {record['test_loss'][-1]:.2f}")
    commit, dirty = _git_commit()
    result = {
        "kind": "bench",
        "command": "python -m vae_course " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"]
        else "vae_course.bench.run_bench(...)",
        "commit": commit,
        "dirty": dirty,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "device": device_name(dev),
        "device_type": dev.type,
        "cpu_model": _cpu_model(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": _loadavg(),
        "settings": {"model": "vae (784-400-20 MLP)", "dataset": "mnist", "binarize": "none",
                     "batch_size": batch_size, "optimizer": "Adam", "lr": lr, "lr_schedule": "constant",
                     "epochs": epochs, "repeats": repeats, "seed": seed, "limit_train": limit_train,
                     "limit_test": limit_test, "compile": compile},
        "setup_seconds": {USUAL: usual_setup, PACKAGE: package_setup},
        "methods": {side: {"label": LABELS[side], **summarize(runs[side])} for side in order},
    }
    methods = result["methods"]
    result["ratio"] = methods[USUAL]["seconds_median"] / methods[PACKAGE]["seconds_median"]
    result["cpu_ratio"] = methods[USUAL]["cpu_seconds_median"] / methods[PACKAGE]["cpu_seconds_median"]
    return result


def format_table(result: dict[str, Any]) -> str:
    """The benchmark's table as text."""
    s = result["settings"]
    lines = [
        f"The seed's VAE on MNIST (grayscale), batch {s['batch_size']}, Adam lr {s['lr']:g}: "
        f"{s['epochs']} epochs x {s['repeats']} repeats per side, alternating; "
        f"first epoch of each run = warm-up",
        f"device: {result['device']} | {result['cpu_model']} | torch {result['torch_version']} | "
        f"threads: {result['threads']} | load average at start: {result['loadavg_start']}",
        "",
        f"{'':<38} {'s/epoch median':>14} {'min':>6} {'max':>6} {'images/s':>9} {'warm-up s':>10} "
        f"{'test loss':>10}",
    ]
    for side in (USUAL, PACKAGE):
        m = result["methods"][side]
        lines.append(
            f"{m['label']:<38} {m['seconds_median']:>14.2f} {m['seconds_min']:>6.2f} {m['seconds_max']:>6.2f} "
            f"{m['images_per_second']:>9.0f} {statistics.median(m['warmup_seconds']):>10.2f} "
            f"{m['test_loss_median']:>10.2f}"
        )
    lines += ["", f"speed-up (median seconds per epoch, usual / package): {result['ratio']:.2f}x",
              f"(process CPU seconds per epoch: {result['methods'][USUAL]['cpu_seconds_median']:.2f} vs "
              f"{result['methods'][PACKAGE]['cpu_seconds_median']:.2f}, ratio {result['cpu_ratio']:.2f}x; "
              "on a busy machine this is steadier than wall-clock time)",
              "test loss: nats per test image after the last epoch (median over repeats; grayscale BCE bound)"]
    return "\n".join(lines)


# ---------------------------------------------------------------- the CLI
def add_bench_parser(subparsers) -> None:
    """Add the ``bench`` subcommand to the CLI's subparsers."""
    from .cli import _positive_int  # the CLI's own argument checks

    p = subparsers.add_parser(
        "bench", help="time the usual DataLoader recipe against the package's trainer",
        description="Train the seed's VAE with the usual PyTorch recipe (torchvision + ToTensor + DataLoader, "
                    "as in the canonical example) and with this package's trainer, alternately, on the same "
                    "device and threads, and print seconds per epoch, images per second, the speed-up and "
                    "the test loss. The first epoch of each run is reported apart as a warm-up.",
    )
    p.add_argument("--epochs", type=_positive_int, default=3, help="epochs per run, >= 2 (default: 3)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="runs of each side (default: 3)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="auto picks CUDA, then Apple MPS, then the CPU (default: auto)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads for both sides (default: torch's choice, usually the core count)")
    p.add_argument("--limit-train", type=_positive_int, default=None, help="first N training images (quick check)")
    p.add_argument("--limit-test", type=_positive_int, default=None, help="first N test images (quick check)")
    p.add_argument("--compile", action="store_true", help="torch.compile the package's training step")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the full record as JSON to PATH")


def run_bench_command(args: argparse.Namespace) -> int:
    """Run ``bench`` from parsed CLI arguments; print the table; return 0."""
    if args.json:  # fail before the long run, not after it
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    result = run_bench(epochs=args.epochs, repeats=args.repeats, device=args.device, threads=args.threads,
                       limit_train=args.limit_train, limit_test=args.limit_test, compile=args.compile)
    print()
    print(format_table(result))
    if args.json:
        path = Path(args.json)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(path)
        print(f"Wrote {path}")
    return 0
