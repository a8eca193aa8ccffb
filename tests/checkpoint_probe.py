"""Loading many checkpoints in a separate interpreter, with each one's peak memory.

Shared by ``test_hostile_checkpoints.py`` and ``test_checkpoint_fuzz.py``. The
probe runs in a subprocess so that a crash (SIGSEGV in a fused kernel, glibc
aborting on a corrupted heap) fails the test instead of killing pytest, and so
that its memory is its own. For every file it resets the kernel's peak-RSS
counter (``/proc/self/clear_refs``), then loads the file, restores it into a
small trainer (as ``Trainer.resume`` does) and, if that worked, trains one more epoch; it prints one JSON
line: the outcome and the peak resident memory above the level before the file.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from course_testing import ROOT

# A small MLP VAE on 256 images, so a case takes milliseconds.
SMALL_CONFIG = dict(model="vae", latent_dim=4, hidden_dim=16, epochs=1, batch_size=64, limit_train=256,
                    limit_test=64, device="cpu", seed=0, log_every=1000)
# What loading one file may add to the process's resident memory, in MB (issue 16).
MEMORY_BOUND_MB = 600
CAN_MEASURE_PEAK = os.access("/proc/self/clear_refs", os.W_OK)

PROBE = r"""
import json, sys
import torch
torch.set_num_threads(1)
from vae_course.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from vae_course.train import TrainConfig, Trainer, TrainingDiverged

config, paths, measure = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "1"
trainer = Trainer(config=TrainConfig(**config), progress=False, log=None)

def kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))

def attempt(path):
    # Load, rebuild and restore one file, then train an epoch: (outcome, detail).
    try:
        state = load_checkpoint(path)
        model_from_checkpoint(state)  # what `evaluate` and Trainer.resume do first
        trainer.load_state(state)
    except CheckpointError as err:
        return "refused", str(err)
    except BaseException as err:
        return "error", f"{type(err).__name__}: {err}"
    weights = trainer.model.state_dict()
    if trainer.epoch != state["epoch"] or any(not torch.equal(weights[k], v) for k, v in state["model_state"].items()):
        return "error", "loaded, but the trainer does not hold what the file holds"
    try:
        trainer.fit(epochs=trainer.epoch + 1)
    except TrainingDiverged as err:  # a valid state with, say, a huge learning rate
        return "diverged", str(err)
    except BaseException as err:
        return "error", f"after loading: {type(err).__name__}: {err}"
    return "trained", ""

for path in paths:
    if measure:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) starts again from the current resident size
        base = kb("VmRSS:")
    outcome, detail = attempt(path)
    peak = (kb("VmHWM:") - base) / 1024 if measure else None
    print(json.dumps({"path": path, "outcome": outcome, "detail": detail[:400], "peak_mb": peak}), flush=True)
"""


def probe(paths: list[Path], timeout: float = 240) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run :data:`PROBE` over ``paths``; return the process and one result per file reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(SMALL_CONFIG), json.dumps([str(p) for p in paths]),
         "1" if CAN_MEASURE_PEAK else "0"],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, results


@functools.lru_cache(maxsize=1)
def trained_state() -> dict:
    """The training state of :data:`SMALL_CONFIG` after one epoch (real MNIST),
    made once per session: deep-copy it before editing."""
    from vae_course.checkpoint import training_state
    from vae_course.train import TrainConfig, Trainer

    trainer = Trainer(config=TrainConfig(**SMALL_CONFIG), progress=False, log=None)
    trainer.fit()
    return training_state(trainer)


# ---------------------------------------------------------------- loads under hard limits (issue 23)
# What one load may add to the process's address space: a refusal needs almost nothing, and
# the hostile files of issue 23 each needed 0.45 to 1.7 GB before they were refused or accepted.
EXTRA_ADDRESS_SPACE = 1024**3
CASE_SECONDS = 60  # a limit, not a timing: the slowest refusal here takes a few seconds

LIMITED = r"""
import json, os, resource, signal, sys
import torch
torch.set_num_threads(1)
from vae_course.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from vae_course.weights import ShippedWeightsError, shipped_model

def kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))

extra, seconds, cases = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
# Everything is imported: from here on, at most `extra` more bytes of address space.
resource.setrlimit(resource.RLIMIT_AS, (kb("VmSize:") * 1024 + extra, resource.RLIM_INFINITY))

def too_long(signum, frame):
    raise TimeoutError(f"still running after {seconds} s")

signal.signal(signal.SIGALRM, too_long)

def attempt(kind, target):
    # (outcome, detail) of reading one file the way the package does.
    try:
        if kind == "checkpoint":  # what evaluate and --resume do first
            model_from_checkpoint(load_checkpoint(target))
        else:  # pretrained()'s path to shipped weights: VAE_COURSE_WEIGHTS=<folder>
            os.environ["VAE_COURSE_WEIGHTS"] = target[0]
            if shipped_model(target[1]) is None:
                return "error", "nothing was loaded"
    except (CheckpointError, ShippedWeightsError) as err:
        return "refused", str(err)
    except BaseException as err:
        return "error", f"{type(err).__name__}: {err}"
    return "loaded", ""

for name, kind, target in cases:
    measure = os.access("/proc/self/clear_refs", os.W_OK)
    if measure:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = kb("VmRSS:")
    signal.alarm(seconds)
    try:
        outcome, detail = attempt(kind, target)
    except TimeoutError as err:
        outcome, detail = "error", str(err)
    finally:
        signal.alarm(0)
    peak = (kb("VmHWM:") - base) / 1024 if measure else None
    print(json.dumps({"name": name, "outcome": outcome, "detail": detail[:600], "peak_mb": peak}), flush=True)
"""


def limited_loads(cases: list[tuple[str, str, object]], extra: int = EXTRA_ADDRESS_SPACE,
                  seconds: int = CASE_SECONDS) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """Read each case in one subprocess whose address space may grow by at most ``extra``
    bytes, each case stopped after ``seconds``: ``(name, "checkpoint", path)`` loads a
    checkpoint as ``evaluate`` does; ``(name, "shipped", [folder, model name])`` loads
    shipped weights as ``pretrained`` does. Returns the process and name -> result."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("VAE_COURSE_RETRAIN", None)
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, str(extra), str(seconds), json.dumps([[n, k, str(t) if isinstance(t, Path)
                                                                               else t] for n, k, t in cases])],
        capture_output=True, text=True, timeout=seconds * len(cases) + 120, env=env, cwd=ROOT,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, {r["name"]: r for r in results}
