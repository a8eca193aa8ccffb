"""Issue 16: seeded random edits of a valid checkpoint never crash, hang or blow up memory.

Each case deep-copies a real one-epoch training state, applies one to three
random edits anywhere in its unpickled structure (a tensor's shape, dtype,
values or strides; a number, string or flag; a key removed or added; a list
shortened or lengthened; a value of another type), and writes it with
``save_checkpoint``, so its checksum is correct: only validation stands between
the edit and the trainer. A subprocess loads, rebuilds and restores every file
and trains one more epoch when the load succeeds (:mod:`checkpoint_probe`).
Each case must end in a load that holds exactly what the file holds (and then
trains, or stops with the usual divergence message) or in one
``CheckpointError``; none may crash, hang or raise memory by more than
``MEMORY_BOUND_MB``.
"""
from __future__ import annotations

import copy
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from checkpoint_probe import CAN_MEASURE_PEAK, MEMORY_BOUND_MB, probe, trained_state
from course_testing import needs_mnist
from vae_course.checkpoint import save_checkpoint

pytestmark = needs_mnist

CASES = 200
SEED = 16


def _sites(obj: Any, path: tuple = ()) -> list[tuple]:
    """The path to every value inside ``obj`` (not ``obj`` itself)."""
    out = []
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        return out
    for key, value in items:
        out.append(path + (key,))
        # Python's random state holds 625 numbers: visit a few, not all.
        if not (isinstance(value, list) and len(value) > 50):
            out.extend(_sites(value, path + (key,)))
    return out


def _tensor_edit(t: torch.Tensor, rng: random.Random) -> Any:
    kind = rng.choice(["shape", "dtype", "nan", "inf", "negative", "zero_stride", "dense_transposed", "scalar",
                       "empty", "number", "values", "bigger"])
    if kind == "shape":
        return t.reshape(-1)[: max(0, t.numel() - rng.randint(1, 3))].clone()
    if kind == "bigger":
        return torch.cat([t.reshape(-1), t.reshape(-1)[:1]]) if t.numel() else torch.zeros(1, dtype=t.dtype)
    if kind == "dtype":
        return t.to(rng.choice([torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool, torch.int32]))
    if kind in ("nan", "inf", "negative") and t.is_floating_point() and t.numel():
        value = {"nan": math.nan, "inf": -math.inf, "negative": -abs(float(t.reshape(-1)[0])) - 1.0}[kind]
        t = t.clone()
        t.reshape(-1)[rng.randrange(t.numel())] = value
        return t
    if kind == "zero_stride" and t.dim() and t.numel():
        return t.reshape(-1)[:1].clone().reshape([1] * t.dim()).expand(t.shape)
    if kind == "dense_transposed" and t.dim() == 2:
        return t.t().contiguous().t()  # the same values in column-major memory: a valid layout
    if kind == "scalar":
        return torch.tensor(1.0)
    if kind == "empty":
        return t.new_empty((0,))
    if kind == "number":
        return float(t.reshape(-1)[0]) if t.numel() else 0.0
    if t.dtype == torch.uint8:  # e.g. a generator state: random bytes
        return torch.randint(0, 256, t.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(rng.randrange(2**31)))
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(rng.randrange(2**31))).to(t.dtype)


def _scalar_edit(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return rng.choice([not value, 0, 1, "True", None])
    if isinstance(value, (int, float)):
        return rng.choice([-1, 0, 1, 10**12, 2**63, -(2**63), math.nan, math.inf, "7", None, True,
                           value * 2, float(value) + 0.5, -value, torch.tensor(float(value)), torch.zeros(2)])
    if isinstance(value, str):
        return rng.choice(["", "x" * 5000, "vae", "cvae", "conv-vae", "ae", None, 5, value.upper(), torch.ones(3)])
    return rng.choice([0, "none", [], {}, torch.zeros(2)])


def _container_edit(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        kind = rng.choice(["drop", "add", "add_int_key", "to_list", "empty", "none"])
        out = dict(value)
        if kind == "drop" and out:
            out.pop(rng.choice(list(out)))
        elif kind == "add":
            out["junk"] = rng.choice([1, "x", [1, 2], {"a": 1}, torch.zeros(2)])
        elif kind == "add_int_key":
            out[rng.randint(0, 20)] = rng.choice([{}, 1.0, torch.zeros(3)])
        elif kind == "to_list":
            return list(out.values())
        elif kind == "empty":
            return {}
        elif kind == "none":
            return None
        return out
    kind = rng.choice(["pop", "duplicate", "append", "reverse", "empty", "retype"])
    out = list(value)
    if kind == "pop" and out:
        out.pop(rng.randrange(len(out)))
    elif kind == "duplicate" and out:
        out.append(copy.deepcopy(out[rng.randrange(len(out))]))
    elif kind == "append":
        out.append(rng.choice([0, "x", None, {}, torch.zeros(1)]))
    elif kind == "reverse":
        out.reverse()
    elif kind == "empty":
        out = []
    elif kind == "retype":  # a list becomes a tuple and a tuple a list
        return tuple(out) if isinstance(value, list) else out
    return tuple(out) if isinstance(value, tuple) else out


def mutate(state: dict, rng: random.Random) -> list[str]:
    """Apply 1-3 random edits to ``state`` in place; return what was edited."""
    done = []
    for _ in range(rng.randint(1, 3)):
        sites = [s for s in _sites(state) if s[0] != "checksum"]
        path = rng.choice(sites)
        parent = state
        for key in path[:-1]:
            parent = parent[key]
        value = parent[path[-1]]
        if isinstance(value, torch.Tensor):
            new = _tensor_edit(value, rng)
        elif isinstance(value, (dict, list, tuple)):
            new = _container_edit(value, rng)
        else:
            new = _scalar_edit(value, rng)
        if isinstance(parent, tuple):  # tuples (Adam's betas) are replaced whole
            grand = state
            for key in path[:-2]:
                grand = grand[key]
            grand[path[-2]] = tuple(new if i == path[-1] else v for i, v in enumerate(parent))
        else:
            parent[path[-1]] = new
        done.append("/".join(map(str, path)))
    return done


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    base = trained_state()
    folder = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(SEED)
    edits = {}
    for i in range(CASES):
        state = copy.deepcopy(base)
        edits[f"case{i:03d}"] = mutate(state, rng)
        save_checkpoint(state, folder / f"case{i:03d}.pt")
    proc, results = probe(sorted(folder.glob("case*.pt")), timeout=400)
    return edits, proc, {Path(r["path"]).stem: r for r in results}


def test_fuzzed_checkpoints_load_correctly_or_raise_one_checkpoint_error(fuzzed):
    edits, proc, results = fuzzed
    assert proc.returncode == 0, f"the loader died ({proc.returncode}): {proc.stderr[-2000:]}"
    assert set(results) == set(edits), f"no result for {sorted(set(edits) - set(results))[:5]}"
    bad = {name: (edits[name], r["detail"]) for name, r in results.items() if r["outcome"] == "error"}
    assert not bad, bad
    refused = [r for r in results.values() if r["outcome"] == "refused"]
    assert all("\n" not in r["detail"] and r["detail"].startswith("checkpoint") for r in refused)
    outcomes = Counter(r["outcome"] for r in results.values())
    # The edits reach both sides: many are refused, and harmless ones (a history
    # value, a version string, a dense transposed weight) still load and train.
    # (issue 23 checks the settings, Adam's fixed numbers and its step counts against each other,
    # so fewer random edits are harmless than before)
    assert outcomes["refused"] >= CASES // 4 and outcomes["trained"] + outcomes["diverged"] >= 5, outcomes


@pytest.mark.skipif(not CAN_MEASURE_PEAK, reason="needs /proc/self/clear_refs (Linux) to measure peak memory")
def test_fuzzed_checkpoints_load_in_bounded_memory(fuzzed):
    _, _, results = fuzzed
    over = {name: r["peak_mb"] for name, r in results.items() if not r["peak_mb"] < MEMORY_BOUND_MB}
    assert not over, over
