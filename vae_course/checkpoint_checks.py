"""The checks a checkpoint's contents pass before anything in it is used.

A checkpoint is untrusted input: it may be damaged on disk, written by another
version, edited by hand, or crafted to crash the loader (a checksum does not
help against the last: anyone can recompute it). The file itself, and the
shape of its pickle before unpickling, are checked by
:mod:`vae_course.safe_load` and :mod:`vae_course.checkpoint_schema`; what is
loaded is then checked here, in two layers, each raising
:class:`CheckpointError` with one line that says what is wrong and what to do:

1. the fields (:func:`check_core_fields`): the right types, and every number
   within :mod:`vae_course.bounds`, the one set of bounds the command line and
   the trainer use too; model sizes checked on the ``meta`` device, which
   allocates nothing;
2. against the objects it will be loaded into (:func:`check_model_state`,
   :func:`optimizer_state_for` in :mod:`vae_course.optimizer_checks`,
   :func:`check_scaler_state`, :func:`check_rng_state`,
   :func:`check_generator_state`): every tensor's shape and dtype equal to what
   the model and optimizer hold, finite weights, an optimizer state that is
   complete and agrees with the training settings, random-number states a
   generator accepts.
"""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .bounds import DATASET_CLASSES, MAX_EPOCHS, check_model_size, shown
from .errors import OneLineError

# ---------------------------------------------------------------- limits
# (the numbers a checkpoint may hold come from vae_course.bounds; these bound its text)
MAX_RECORD_KEYS = 256
MAX_TEXT = 4096  # characters in any string field
# The integers a field may hold: within 64 bits, so nothing overflows when Python
# hands them to C or to float() (float(10**400) raises OverflowError).
MAX_MAGNITUDE = 2**63


class CheckpointError(OneLineError, ValueError):
    """A checkpoint that cannot be used: unsafe, damaged, or for another model (one line in a notebook too)."""


def fail(label: str, problem: str) -> CheckpointError:
    """One line: ``<label> <problem>`` with any newlines from torch folded away."""
    sep = "" if problem.startswith(":") else " "
    return CheckpointError(" ".join(f"{label}{sep}{problem}".split()))


def is_int(value: Any) -> bool:
    """An ``int`` (not a ``bool``) of at most 64 bits."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < MAX_MAGNITUDE


def is_number(value: Any) -> bool:
    """An ``int`` of at most 64 bits or a ``float`` (never raises, unlike ``float(10**400)``)."""
    return is_int(value) or isinstance(value, float)


def is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


# ---------------------------------------------------------------- 1. the fields
def check_text(value: Any, name: str, label: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise fail(label, f": {name} should be a short string, found {type(value).__name__}")
    return value


def check_record(record: Any, name: str, label: str) -> None:
    """A dict of at most :data:`MAX_RECORD_KEYS` string keys to finite numbers."""
    if not isinstance(record, dict) or len(record) > MAX_RECORD_KEYS:
        raise fail(label, f": {name} should be a dict of numbers, found {type(record).__name__}")
    for key, value in record.items():
        if not isinstance(key, str) or len(key) > MAX_TEXT:
            raise fail(label, f": {name} has a key {key!r} that is not a short string")
        if not is_finite_number(value):
            raise fail(label, f": {name}[{key!r}] should be a finite number, found {shown(value)}")


def check_history(history: Any, label: str) -> None:
    if not isinstance(history, list) or len(history) > MAX_EPOCHS:
        raise fail(label, f": history should be a list of per-epoch records, found {type(history).__name__}")
    for i, record in enumerate(history):
        check_record(record, f"history[{i}]", label)


def meta_model(name: Any, config: Any, label: str) -> nn.Module:
    """The model ``name(**config)`` built on the ``meta`` device (no memory), after
    checking every size against :mod:`vae_course.bounds` (the sizes the command line
    and the trainer accept) and the parameter count against
    :data:`vae_course.bounds.MAX_MODEL_PARAMETERS`."""
    from .models import MODELS

    if not isinstance(name, str) or name not in MODELS:
        raise fail(label, f"describes a model this vae_course cannot build: {shown(name)} is not one of "
                          f"{sorted(MODELS)}")
    if not isinstance(config, dict):
        raise fail(label, f": model_config should be a dict, found {type(config).__name__}")
    try:
        return check_model_size(name, config)
    except (ValueError, TypeError) as err:
        raise fail(label, f"describes a model this vae_course cannot build: {err}") from None


def check_core_fields(state: dict, label: str) -> None:
    """Types and ranges of the fields every checkpoint has (after the version check)."""
    kinds = {"model_name": str, "model_config": dict, "model_state": dict, "epoch": int, "history": list}
    for key, kind in kinds.items():
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            article = "an" if kind is int else "a"
            raise fail(label, f": {key} should be {article} {kind.__name__}, found {type(state[key]).__name__}")
    if not 0 <= state["epoch"] <= MAX_EPOCHS:
        raise fail(label, f": epoch should be a whole number >= 0 and at most {MAX_EPOCHS} (the epochs a run may "
                          f"have), found {shown(state['epoch'])}")
    meta_model(state["model_name"], state["model_config"], label)
    for key, value in state["model_state"].items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise fail(label, f": model_state should map parameter names to tensors, found {shown(key)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise fail(label, f"has NaN or infinite weights in {key!r} (training diverged before it was saved?); "
                              f"use an earlier checkpoint")
    check_history(state["history"], label)
    for key in ("vae_course_version", "torch_version", "dataset", "binarize"):
        if key in state:
            check_text(state[key], key, label)
    if "interrupted" in state and not isinstance(state["interrupted"], bool):
        raise fail(label, f": interrupted should be True or False, found {type(state['interrupted']).__name__}")
    if "train_config" in state:
        check_train_config(state["train_config"], label)
        classes = state["model_config"].get("num_classes")
        if classes is not None and classes != DATASET_CLASSES:
            raise fail(label, f": a conditional model trained on {state['train_config']['dataset']} conditions on "
                              f"its {DATASET_CLASSES} classes, but model_config says num_classes={classes}; it is "
                              f"damaged or was edited")


def check_train_config(config: Any, label: str) -> None:
    """A dict of setting names to plain values (None, bool, 64-bit int, finite float,
    short str) that holds every setting a checkpoint records (``SAVED_SETTINGS``) and
    passes :meth:`~vae_course.config.TrainConfig.validate`: the trainer's own bounds.
    Settings ``TrainConfig`` does not know (from a newer vae_course) are not checked."""
    from dataclasses import fields

    from .config import SAVED_SETTINGS, TrainConfig

    if not isinstance(config, dict) or len(config) > MAX_RECORD_KEYS:
        raise fail(label, f": train_config should be a dict of settings, found {type(config).__name__}")
    for key, value in config.items():
        if not isinstance(key, str) or len(key) > MAX_TEXT:
            raise fail(label, f": train_config has a key {shown(key)} that is not a short string")
        plain = value is None or isinstance(value, bool) or is_finite_number(value) or (
            isinstance(value, str) and len(value) <= MAX_TEXT)
        if not plain:
            raise fail(label, f": train_config {key} should be a plain setting (a number within 64 bits, text, "
                              f"true/false or none), found {shown(value)}")
    missing = [k for k in SAVED_SETTINGS if k not in config]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise fail(label, f": train_config has no {missing[0]!r} setting{more}, which every checkpoint records; "
                          f"it is damaged or was edited")
    known = {f.name for f in fields(TrainConfig)}
    try:
        TrainConfig(**{k: v for k, v in config.items() if k in known}).validate()
    except (TypeError, ValueError) as err:
        raise fail(label, f": train_config is not valid: {err}") from None


# ---------------------------------------------------------------- 2. against live objects
def check_model_state(model: nn.Module, weights: dict, label: str) -> None:
    """Every tensor the model needs, of its exact shape and dtype, and nothing else."""
    name = getattr(model, "name", type(model).__name__)
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        parts = ([f"missing {missing[:6]}"] if missing else []) + ([f"unexpected {unexpected[:6]}"] if unexpected else [])
        raise fail(label, f": weights do not fit the {name!r} model: {'; '.join(parts)}")
    for key, want in expected.items():
        got = weights[key]
        if not isinstance(got, Tensor):
            raise fail(label, f": weights do not fit the {name!r} model: {key} is a {type(got).__name__}")
        if got.shape != want.shape or got.dtype != want.dtype:
            raise fail(label, f": weights do not fit the {name!r} model: {key} is {tuple(got.shape)} {got.dtype}, "
                              f"the model needs {tuple(want.shape)} {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise fail(label, f"has NaN or infinite weights in {key!r}; use an earlier checkpoint")


_SCALER_KEYS = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}


def check_scaler_state(saved: Any, label: str) -> None:
    """A ``GradScaler`` state: ``{}`` (no loss scaling) or its five numbers, each in range."""
    if not isinstance(saved, dict):
        raise fail(label, f": scaler_state should be a dict, found {type(saved).__name__}")
    if not saved:
        return
    if set(saved) != _SCALER_KEYS:
        raise fail(label, f": scaler_state should have {sorted(_SCALER_KEYS)}")
    ok = (is_finite_number(saved["scale"]) and saved["scale"] > 0
          and is_finite_number(saved["growth_factor"]) and saved["growth_factor"] > 1
          and is_finite_number(saved["backoff_factor"]) and 0 < saved["backoff_factor"] < 1
          and is_int(saved["growth_interval"]) and saved["growth_interval"] > 0
          and is_int(saved["_growth_tracker"]) and saved["_growth_tracker"] >= 0)
    if not ok:
        raise fail(label, ": scaler_state has a value out of range (the loss scale must be positive and finite)")


def check_generator_state(state: Any, generator: torch.Generator, name: str, label: str) -> None:
    """``state`` must be what ``generator.get_state()`` gives (a ``uint8`` vector of
    the same length), accepted by a scratch generator of the same kind, which
    then draws finite normal numbers."""
    want = generator.get_state()
    if not isinstance(state, Tensor) or state.dtype != torch.uint8 or state.shape != want.shape:
        found = f"{state.dtype} {tuple(state.shape)}" if isinstance(state, Tensor) else type(state).__name__
        raise fail(label, f": {name} should be a uint8 tensor of shape {tuple(want.shape)}, found {found}")
    scratch = torch.Generator(device=generator.device)
    try:
        scratch.set_state(state)
        draws = torch.randn(8, generator=scratch, device=generator.device)
    except (RuntimeError, ValueError) as err:
        raise fail(label, f": {name} is not a valid generator state ({str(err)[:120]})") from None
    if not bool(torch.isfinite(draws).all()):
        raise fail(label, f": {name} makes the generator draw non-finite numbers")


def _check_python_rng(state: Any, label: str) -> None:
    ok = isinstance(state, (list, tuple)) and len(state) == 3 and is_int(state[0]) \
        and isinstance(state[1], (list, tuple)) and len(state[1]) == 625 and all(is_int(v) for v in state[1]) \
        and (state[2] is None or is_finite_number(state[2]))
    if ok:
        try:
            random.Random().setstate((state[0], tuple(state[1]), state[2]))
        except (ValueError, TypeError, OverflowError):
            ok = False
    if not ok:
        raise fail(label, ": rng['python'] is not a valid state of Python's random module")


def _check_numpy_rng(state: Any, label: str) -> None:
    ok = isinstance(state, dict) and {"kind", "keys", "pos", "has_gauss", "cached"} <= set(state) \
        and isinstance(state["kind"], str) and state["kind"] == "MT19937" and isinstance(state["keys"], Tensor) \
        and state["keys"].dtype == torch.int64 and state["keys"].shape == (624,) \
        and is_int(state["pos"]) and 0 <= state["pos"] <= 624 \
        and is_int(state["has_gauss"]) and state["has_gauss"] in (0, 1) and is_finite_number(state["cached"])
    # NumPy does not check pos: a position past 624 reads beyond the key array.
    if ok:
        keys = state["keys"]
        ok = bool(((keys >= 0) & (keys < 2**32)).all())
    if ok:
        try:
            np.random.RandomState().set_state(
                ("MT19937", keys.numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"]))
        except (ValueError, TypeError, OverflowError):
            ok = False
    if not ok:
        raise fail(label, ": rng['numpy'] is not a valid state of NumPy's global generator")


def check_rng_state(rng: Any, label: str) -> None:
    """The global generators' states as :func:`vae_course.rng.get_rng_state` writes them."""
    if not isinstance(rng, dict) or not {"torch", "python", "numpy"} <= set(rng):
        raise fail(label, ": rng should be a dict with the 'torch', 'python' and 'numpy' generator states")
    check_generator_state(rng["torch"], torch.default_generator, "rng['torch']", label)
    _check_python_rng(rng["python"], label)
    _check_numpy_rng(rng["numpy"], label)
    if "cuda" in rng and torch.cuda.is_available():
        states = rng["cuda"]
        if not isinstance(states, (list, tuple)) or len(states) > torch.cuda.device_count():
            raise fail(label, ": rng['cuda'] should hold one state per GPU of this machine at most")
        for i, s in enumerate(states):
            check_generator_state(s, torch.cuda.default_generators[i], f"rng['cuda'][{i}]", label)
