"""``python -m vae_course bench``: the usual PyTorch recipe against the package's trainer.

Both sides train the seed's MLP VAE (784-400-20) on grayscale MNIST with the
canonical PyTorch example's settings (batch 128, Adam with lr 1e-3, constant)
on the same device, with the same number of threads. What differs is only *how*
the work is fed to the machine:

* **the usual recipe** (:func:`vae_course.bench_runs.usual_recipe_epoch`) is written out plainly, as
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

How it keeps the comparison fair:

* **one fresh process per run.** Every run of either side is a child process
  (``python -m vae_course.bench_runs --side usual|package ...``,
  :mod:`vae_course.bench_runs`) that prints one
  JSON line, so neither side inherits the other's allocator, caches, threads
  or imported modules, and the harness itself costs the timed loop nothing.
  Both children get the same thread count (``torch.set_num_threads`` and
  ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``).
* **alternation.** Runs go usual, package | package, usual | usual, package ...
  so a slow stretch of the machine hits both sides alike.
* **warm-up apart.** The first epoch of every run (allocations, caches,
  ``torch.compile``) is reported separately; the statistics use the later
  epochs: median, min-max, and each repeat's median (the per-repeat ratio shows
  the spread).
* **the machine's load.** Before each child the bench measures how many cores
  *other* processes keep busy (:func:`vae_course.provenance.busy_cores` over
  one second, while the bench itself sleeps; the load average is recorded too,
  but it still remembers the previous child for minutes). A run counts as
  disturbed when that exceeds :func:`busy_threshold`; the whole record is then
  flagged ``"busy": true`` and a warning is printed.
* **the trainer's own clock.** The package side's seconds are what the trainer
  records per epoch in its history (``"seconds"``); nothing of the trainer is
  patched. Timings never include evaluation or data loading.

``--profile N`` adds, in further fresh processes, a ``torch.profiler`` table of
N training steps of each side (top operators by self CPU time) and the time of
the step's matrix multiplies alone (the GEMM floor), to show where the
package's time goes beyond the arithmetic.

``--json PATH`` (or ``--save``: ``vae_course/results/bench_<cpu|gpu|mps>.json``) writes the
whole record with its provenance; the path is checked writable before any run.
The benchmark is not a test: ``tests/test_bench.py`` runs a tiny one only to
check that it works, and never asserts a time.

This module is a leaf: it imports bench_runs (which imports data, device and
train), device and provenance, never the CLI.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from . import provenance
from .arguments import positive_float as _positive_float
from .arguments import positive_int as _positive_int
from .bench_runs import GEMM, PACKAGE, RECORD_MARK, USUAL, BenchSettings
from .device import DEVICE_CHOICES, get_device
from .results import RESULTS_DIR

SIDES = (USUAL, PACKAGE)
LABELS = {USUAL: "usual recipe (DataLoader + ToTensor)", PACKAGE: "vae_course trainer"}
# A run is disturbed when other processes keep more cores busy than this margin
# allows (see busy_threshold): half a core of anything else already shifts a
# 2-thread timing by several per cent.
BUSY_MARGIN = 0.5
CHILD_TIMEOUT_S = 1800.0


class BenchError(RuntimeError):
    """A benchmark child process failed or ran out of time."""


# ---------------------------------------------------------------- the parent: fairness
def run_order(repeats: int) -> list[tuple[int, str]]:
    """``(repeat, side)`` in the order the children run: usual, package | package, usual | ..."""
    order = []
    for repeat in range(repeats):
        pair = SIDES if repeat % 2 == 0 else SIDES[::-1]
        order += [(repeat, side) for side in pair]
    return order


def busy_threshold(threads: int, cpu_count: int, margin: float = BUSY_MARGIN) -> float:
    """How many cores other processes may keep busy before a run counts as disturbed.

    They must leave the run its ``threads`` cores plus ``margin``, and may never
    use more than ``margin`` on a machine the run fills: ``max(margin,
    cpu_count - threads - margin)``. On a 2-core machine with 2 threads that is
    0.5 cores: nothing else should run.
    """
    return max(margin, cpu_count - threads - margin)


def is_busy(other_load: float | None, threads: int, cpu_count: int, margin: float = BUSY_MARGIN) -> bool:
    """True when ``other_load`` (cores busy with other work) exceeds :func:`busy_threshold`.
    An unknown load (``None``) is not flagged."""
    return other_load is not None and other_load > busy_threshold(threads, cpu_count, margin)


def other_load() -> float | None:
    """Cores kept busy by other processes right now (1 s of ``/proc/stat``), or,
    where that is not available, the 1-minute load average."""
    cores = provenance.busy_cores(1.0)
    if cores is not None:
        return cores
    load = provenance.load_average()
    return load[0] if load else None


def check_writable(path: str | os.PathLike) -> Path:
    """Make sure ``path`` can be written (creating its folder), before a long run.

    Raises ``ValueError`` with the reason and what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--json: {path} is a folder; give a file name such as {path / 'bench.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "the file is read-only")
    except OSError as err:
        raise ValueError(f"--json: cannot write {path} ({err.strerror or err}); choose another path") from None
    return path


def default_json_path(device: str) -> Path:
    """``bench_cpu.json``, ``bench_gpu.json`` or ``bench_mps.json`` in the committed results
    folder (:data:`vae_course.results.RESULTS_DIR`), where the results page reads them."""
    tag = {"cuda": "gpu"}.get(torch.device(device).type, torch.device(device).type)
    return RESULTS_DIR / f"bench_{tag}.json"


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    # the child imports this very copy of the package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(provenance.PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_child(settings: BenchSettings, side: str, profile_steps: int = 0,
              timeout_s: float = CHILD_TIMEOUT_S, python: str = sys.executable) -> dict[str, Any]:
    """Run one side in a fresh ``python -m vae_course.bench_runs`` process; return its record.

    Raises :class:`BenchError` when the child fails, prints no record, or runs
    longer than ``timeout_s`` seconds.
    """
    argv = [python, "-m", "vae_course.bench_runs", *settings.child_argv(side, profile_steps)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              env=_child_env(settings.threads), cwd=provenance.PACKAGE_ROOT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the {side} run took longer than {timeout_s:g} s; raise --child-timeout") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RECORD_MARK)]
    if proc.returncode != 0 or len(lines) != 1:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"the {side} run failed (exit code {proc.returncode}): {tail}")
    record = json.loads(lines[0][len(RECORD_MARK):])
    record["process_seconds"] = time.perf_counter() - start  # start-up and imports included
    return record


# ---------------------------------------------------------------- the parent: statistics
def _median_or_none(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def summarize_side(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Statistics of one side over its repeats (seconds are wall-clock per epoch).

    The first epoch of each run is the warm-up and is reported apart
    (``warmup_seconds``); ``steady_seconds`` are all later epochs of all runs,
    ``repeat_medians`` one median per run. With 1-epoch runs there is no steady
    state: the warm-up epochs stand in and ``steady_is_warmup`` is True.
    """
    warmup = [r["seconds"][0] for r in runs]
    steady = [s for r in runs for s in r["seconds"][1:]]
    steady_is_warmup = not steady
    steady = steady or warmup
    median = statistics.median(steady)
    cpu_runs = [r.get("cpu_seconds") for r in runs]
    cpu_steady = None if any(c is None for c in cpu_runs) else [c for cs in cpu_runs for c in (cs[1:] or cs[:1])]
    return {
        "warmup_seconds": warmup,
        "steady_seconds": steady,
        "steady_is_warmup": steady_is_warmup,
        "seconds_median": median,
        "seconds_min": min(steady),
        "seconds_max": max(steady),
        "repeat_medians": [statistics.median(r["seconds"][1:] or r["seconds"][:1]) for r in runs],
        "cpu_seconds_median": _median_or_none(cpu_steady),
        "images_per_second": runs[0]["images"] / median,
        "test_loss": [r["test_loss"][-1] for r in runs],
        "test_loss_median": statistics.median(r["test_loss"][-1] for r in runs),
        "setup_seconds_median": statistics.median(r["setup_seconds"] for r in runs),
        "runs": runs,
    }


def _ratios(methods: dict[str, dict[str, Any]]) -> dict[str, Any]:
    usual, package = methods[USUAL], methods[PACKAGE]
    per_repeat = [u / p for u, p in zip(usual["repeat_medians"], package["repeat_medians"])]
    cpu = (usual["cpu_seconds_median"] / package["cpu_seconds_median"]
           if usual["cpu_seconds_median"] and package["cpu_seconds_median"] else None)
    return {"ratio": usual["seconds_median"] / package["seconds_median"], "ratio_per_repeat": per_repeat,
            "ratio_min": min(per_repeat), "ratio_max": max(per_repeat), "cpu_ratio": cpu}


# ---------------------------------------------------------------- the parent: the run
def _call_description(settings: BenchSettings, repeats: int) -> str:
    arguments = ", ".join(f"{k}={v!r}" for k, v in asdict(settings).items())
    return f"vae_course.bench.run_bench({arguments}, repeats={repeats})"


def run_bench(epochs: int = 3, repeats: int = 3, device: str = "auto", threads: int | None = None,
              batch_size: int = 128, lr: float = 1e-3, seed: int = 1, limit_train: int | None = None,
              limit_test: int | None = None, compile: bool = False, profile_steps: int = 0,
              child_timeout_s: float = CHILD_TIMEOUT_S, load_probe: Callable[[], float | None] | None = None,
              command: str | None = None, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run the benchmark, every run in its own process, and return its record.

    Args:
        epochs: epochs per run; the first is the warm-up (with 1 there is no steady state).
        repeats: runs of each side, alternating which goes first.
        threads: torch threads for every child (default: this process's ``torch.get_num_threads()``).
        limit_train, limit_test: use the first N images (quick checks only).
        profile_steps: if > 0, also profile that many steps of each side and time the GEMM floor.
        child_timeout_s: the longest one child may run (seconds).
        load_probe: returns the cores other processes keep busy just before a
            child starts (default: :func:`other_load`); the busy flag compares it
            with :func:`busy_threshold`.
        command: the command line to record (default: a description of this call).
    Returns:
        a JSON-ready dict: provenance, settings, ``order``, per-side statistics in
        ``methods``, ``ratio`` (usual / package median seconds per epoch), the
        per-repeat ratios, ``busy``, and ``profile`` when asked for.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: need at least 1, got {repeats}")
    dev = get_device(device)
    settings = BenchSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=dev.type,
                             threads=threads if threads is not None else torch.get_num_threads(),
                             limit_train=limit_train, limit_test=limit_test, compile=compile)
    settings.validate()
    say = log or (lambda _msg: None)
    probe = load_probe or other_load
    cpu_count = os.cpu_count() or 1
    threshold = busy_threshold(settings.threads, cpu_count)
    loadavg_start = provenance.load_average()
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    order = run_order(repeats)
    for position, (repeat, side) in enumerate(order):
        load = probe()
        busy = is_busy(load, settings.threads, cpu_count)
        if busy:
            say(f"warning: before run {position + 1} other processes kept {load:.2f} cores busy "
                f"(more than {threshold:.2f} of {cpu_count}): these times are not a fair benchmark")
        record = run_child(settings, side, timeout_s=child_timeout_s)
        record.update({"repeat": repeat, "position": position, "load_before": load, "busy_before": busy,
                       "loadavg_before": provenance.load_average()})
        runs[side].append(record)
        say(f"repeat {repeat + 1}/{repeats} {LABELS[side]:<38} seconds per epoch: "
            + " ".join(f"{s:.2f}" for s in record["seconds"]) + f" | test loss {record['test_loss'][-1]:.2f}")
    methods = {side: {"label": LABELS[side], **summarize_side(runs[side])} for side in SIDES}
    first = runs[USUAL][0]
    result = {
        "kind": "bench",
        "command": command or _call_description(settings, repeats),
        **provenance.collect(),
        "device": first["device"],
        "device_type": dev.type,
        "threads": settings.threads,
        "isolation": "each run in its own process (python -m vae_course.bench_runs --side ...), alternating",
        "loadavg_start": loadavg_start,
        "loadavg_end": provenance.load_average(),
        "load_measure": "cores busy with other processes over 1 s before each run (/proc/stat), "
                        "else the 1-minute load average",
        "busy_threshold_cores": threshold,
        "busy": any(r["busy_before"] for side in SIDES for r in runs[side]),
        "order": [[repeat, side] for repeat, side in order],
        "settings": {"model": "vae (784-400-20 MLP)", "dataset": "mnist", "binarize": "none",
                     "optimizer": "Adam", "lr_schedule": "constant", "repeats": repeats, **asdict(settings)},
        "setup_seconds": {side: methods[side]["setup_seconds_median"] for side in SIDES},
        "methods": methods,
        **_ratios(methods),
    }
    result.pop("loadavg", None)  # provenance's snapshot; loadavg_start/end say more
    if profile_steps:
        result["profile"] = run_profile(settings, profile_steps, methods, child_timeout_s, say)
    return result


def run_profile(settings: BenchSettings, steps: int, methods: dict[str, dict[str, Any]],
                timeout_s: float, say: Callable[[str], None]) -> dict[str, Any]:
    """Profile ``steps`` steps of each side and time the GEMM floor, each in a fresh process.

    ``gap`` compares the package's median epoch with the GEMM floor: what the
    trainer spends beyond the matrix multiplies (bias, activations, the loss,
    Adam, batching and Python).
    """
    say(f"profiling {steps} steps of each side and the GEMM floor ...")
    out: dict[str, Any] = {"steps": steps}
    for side in SIDES:
        out[side] = run_child(settings, side, profile_steps=steps, timeout_s=timeout_s)
    floor = run_child(settings, GEMM, timeout_s=timeout_s)
    out["gemm_floor"] = floor
    package = methods[PACKAGE]["seconds_median"]
    out["gap"] = {
        "package_seconds_per_epoch": package,
        "usual_seconds_per_epoch": methods[USUAL]["seconds_median"],
        "gemm_floor_seconds_per_epoch": floor["seconds_median"],
        "package_over_floor": package / floor["seconds_median"],
        "usual_over_floor": methods[USUAL]["seconds_median"] / floor["seconds_median"],
        "non_gemm_share_of_package_epoch": 1 - floor["seconds_median"] / package,
    }
    return out


# ---------------------------------------------------------------- the table
def _profile_lines(profile: dict[str, Any], top: int = 8) -> list[str]:
    gap = profile["gap"]
    lines = ["", "GEMM floor (the step's 14 matrix multiplies alone): "
                 f"{gap['gemm_floor_seconds_per_epoch']:.2f} s/epoch "
                 f"({profile['gemm_floor']['gflop_per_epoch']:.0f} GFLOP); package {gap['package_over_floor']:.2f}x "
                 f"the floor, usual recipe {gap['usual_over_floor']:.2f}x"]
    for side in SIDES:
        p = profile[side]
        lines.append(f"profile of {p['steps']} steps, {LABELS[side]}: {p['wall_ms_per_step']:.2f} ms/step "
                     f"(under the profiler), matrix multiplies {p['gemm_share']:.0%} of self CPU time")
        lines += [f"    {op['self_cpu_ms']:>9.1f} ms {op['share']:>6.1%} {op['calls']:>6} calls  {op['name']}"
                  for op in p["ops"][:top]]
    return lines


def format_table(result: dict[str, Any], json_path: Path | None = None) -> str:
    """The benchmark's table as text; ``json_path``: where the full record was written, if it was."""
    s = result["settings"]
    lines = [
        f"The seed's VAE on MNIST (grayscale), batch {s['batch_size']}, Adam lr {s['lr']:g}: "
        f"{s['epochs']} epochs x {s['repeats']} repeats per side, each run in its own process, alternating; "
        f"first epoch of each run = warm-up",
        f"device: {result['device']} | {result['cpu_model']} | torch {result['torch_version']} | "
        f"threads: {result['threads']} | load average at start: {result['loadavg_start']}",
        "",
        f"{'':<38} {'s/epoch median':>14} {'min':>6} {'max':>6} {'images/s':>9} {'warm-up s':>10} "
        f"{'test loss':>10}",
    ]
    for side in SIDES:
        m = result["methods"][side]
        lines.append(
            f"{m['label']:<38} {m['seconds_median']:>14.2f} {m['seconds_min']:>6.2f} {m['seconds_max']:>6.2f} "
            f"{m['images_per_second']:>9.0f} {statistics.median(m['warmup_seconds']):>10.2f} "
            f"{m['test_loss_median']:>10.2f}"
        )
    lines += ["", f"speed-up (median seconds per epoch, usual / package): {result['ratio']:.2f}x; per repeat: "
              + ", ".join(f"{r:.2f}x" for r in result["ratio_per_repeat"])]
    if result["cpu_ratio"] is not None:
        lines.append(f"process CPU seconds per epoch: {result['methods'][USUAL]['cpu_seconds_median']:.2f} vs "
                     f"{result['methods'][PACKAGE]['cpu_seconds_median']:.2f}, ratio {result['cpu_ratio']:.2f}x")
    lines.append("test loss: nats per test image after the last epoch (median over repeats; grayscale BCE bound)")
    if result["methods"][USUAL]["steady_is_warmup"]:
        lines.append("note: 1 epoch per run, so these are warm-up epochs; use --epochs 3 for a steady state")
    if result["busy"]:
        # Point at the per-run loads only where they are written (--json PATH or --save).
        where = f"; see load_before in {json_path}" if json_path is not None else ""
        lines.append(f"WARNING: the machine was busy (other processes above {result['busy_threshold_cores']:.2f} "
                     f"cores before some runs{where}): not a fair benchmark")
    if "profile" in result:
        lines += _profile_lines(result["profile"])
    return "\n".join(lines)


# ---------------------------------------------------------------- the CLI
def add_bench_parser(subparsers) -> None:
    """Add the ``bench`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench", help="time the usual DataLoader recipe against the package's trainer",
        description="Train the seed's VAE with the usual PyTorch recipe (torchvision + ToTensor + DataLoader, "
                    "as in the canonical example) and with this package's trainer, each run in its own fresh "
                    "process, alternately, on the same device and threads, and print seconds per epoch, images "
                    "per second, the speed-up and the test loss. The first epoch of each run is reported apart "
                    "as a warm-up. Runs started while other processes keep cores busy are flagged.",
    )
    p.add_argument("--epochs", type=_positive_int, default=3,
                   help="epochs per run; the first is the warm-up (default: 3)")
    p.add_argument("--repeats", type=_positive_int, default=3, help="runs of each side (default: 3)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="auto picks CUDA, then Apple MPS, then the CPU (default: auto)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads for both sides (default: torch's choice, usually the core count)")
    p.add_argument("--limit-train", type=_positive_int, default=None, help="first N training images (quick check)")
    p.add_argument("--limit-test", type=_positive_int, default=None, help="first N test images (quick check)")
    p.add_argument("--compile", action="store_true", help="torch.compile the package's training step")
    p.add_argument("--profile", type=_positive_int, nargs="?", const=50, default=0, metavar="N",
                   help="also profile N training steps of each side (default N: 50) and time the GEMM floor")
    p.add_argument("--child-timeout", type=_positive_float, default=CHILD_TIMEOUT_S, metavar="SECONDS",
                   help=f"the longest one run may take (default: {CHILD_TIMEOUT_S:g})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", metavar="PATH", default=None, help="write the full record as JSON to PATH")
    out.add_argument("--save", action="store_true",
                     help="write it to vae_course/results/bench_<cpu|gpu|mps>.json (for the results page)")


def command_line(args: argparse.Namespace) -> str:
    """The ``python -m vae_course bench ...`` line that reproduces ``args`` (recorded in the JSON)."""
    parts = ["python -m vae_course bench"]
    defaults = {"epochs": 3, "repeats": 3, "device": "auto", "threads": None, "limit_train": None,
                "limit_test": None, "profile": 0, "child_timeout": CHILD_TIMEOUT_S}
    for name, default in defaults.items():
        value = getattr(args, name)
        if value != default:
            parts.append(f"--{name.replace('_', '-')} {value:g}" if isinstance(value, float)
                         else f"--{name.replace('_', '-')} {value}")
    parts += [flag for flag, on in (("--compile", args.compile), ("--save", args.save)) if on]
    if args.json:
        parts.append(f"--json {args.json}")
    return " ".join(parts)


def run_bench_command(args: argparse.Namespace) -> int:
    """Run ``bench`` from parsed CLI arguments: print the table, write the JSON; 0 on success,
    1 (with one line on stderr) when a run fails."""
    path = Path(args.json) if args.json else default_json_path(get_device(args.device).type) if args.save else None
    if path is not None:
        check_writable(path)  # fail before the long run, not after it
    try:
        result = run_bench(epochs=args.epochs, repeats=args.repeats, device=args.device, threads=args.threads,
                           limit_train=args.limit_train, limit_test=args.limit_test, compile=args.compile,
                           profile_steps=args.profile, child_timeout_s=args.child_timeout,
                           command=command_line(args))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print()
    print(format_table(result, path))
    if path is not None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(path)
        print(f"Wrote {path}")
    return 0

