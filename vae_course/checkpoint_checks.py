"""The checks a checkpoint passes before anything in it is used.

A checkpoint is untrusted input: it may be damaged on disk, written by another
version, edited by hand, or crafted to crash the loader (a checksum does not
help against the last: anyone can recompute it). So everything is checked
*before* it is used, in three layers, each raising :class:`CheckpointError`
with one line that says what is wrong and what to do:

1. the file (:func:`check_archive`): a zip archive of a bounded number of
   uncompressed records whose declared sizes fit in the file, so ``torch.load``
   can never allocate more than the file holds;
2. the loaded structure (:func:`check_tensors`, :func:`check_core_fields`):
   every tensor dense, non-overlapping, on the CPU, of a plain dtype; the fields
   of the right types and ranges; model sizes within :data:`MODEL_SIZE_LIMITS`
   (checked on the ``meta`` device, which allocates nothing);
3. against the objects it will be loaded into (:func:`check_model_state`,
   :func:`optimizer_state_for`, :func:`check_scaler_state`,
   :func:`check_rng_state`, :func:`check_generator_state`): every tensor's shape
   and dtype equal to what the model and optimizer hold, finite weights, sane
   optimizer steps, random-number states a generator accepts.
"""
from __future__ import annotations

import math
import random
import struct
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor, nn

from .models import MODELS, build_model

# ---------------------------------------------------------------- limits
# A hard cap on a checkpoint file (bytes). The course's largest checkpoint (the
# ConvVAE with its Adam state) is about 21 MB; 2 GiB leaves room for any model
# a learner would train here while bounding what a file can make us allocate.
MAX_FILE_BYTES = 2 * 1024**3
# torch.save writes one record per tensor storage plus a handful of small ones.
MAX_ARCHIVE_ENTRIES = 10_000
# The pickled structure (everything except tensor bytes). Unpickling can expand
# it about 30-fold in Python objects (an empty list is 2 pickle bytes, 64 in
# memory), so this bounds that memory too. A 10,000-epoch history fits easily.
MAX_PICKLE_BYTES = 8 * 1024**2
MAX_NESTING = 32
# Model constructor arguments: upper bounds that no course model comes near.
MODEL_SIZE_LIMITS = {"latent_dim": 4096, "hidden_dim": 65_536, "channels": 1024, "num_classes": 10_000}
MAX_MODEL_PARAMETERS = 50_000_000  # 200 MB of float32 weights
MAX_EPOCHS = 1_000_000
MAX_RECORD_KEYS = 256
MAX_TEXT = 4096  # characters in any string field
PLAIN_DTYPES = {
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unsafe, damaged, or for another model."""


def fail(label: str, problem: str) -> CheckpointError:
    """One line: ``<label> <problem>`` with any newlines from torch folded away."""
    sep = "" if problem.startswith(":") else " "
    return CheckpointError(" ".join(f"{label}{sep}{problem}".split()))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


# ---------------------------------------------------------------- 1. the file
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def _central_directory(f: BinaryIO, size: int, label: str) -> tuple[int, int]:
    """``(entries, bytes)`` of the zip's central directory, read from its end
    record *before* ``zipfile`` parses (and allocates for) every entry."""
    damaged = fail(label, "is truncated or corrupted, or is not a PyTorch checkpoint (not a zip archive); it "
                          "was not loaded (nothing was executed) and is left as it is: use an earlier copy")
    tail_len = min(size, 65_536 + 22)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise damaged
    entries, cd_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    if entries != 0xFFFF and cd_bytes != 0xFFFFFFFF:
        return entries, cd_bytes
    # ZIP64: the counts live in a second end record that a locator points to.
    loc = at - 20
    if loc < 0 or tail[loc : loc + 4] != _ZIP64_LOCATOR:
        raise damaged
    (offset,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
    if offset + 56 > size:
        raise damaged
    f.seek(offset)
    record = f.read(56)
    if record[:4] != _ZIP64_EOCD:
        raise damaged
    entries, cd_bytes = struct.unpack("<QQ", record[32:48])
    return entries, cd_bytes


def check_archive(f: BinaryIO, size: int, label: str) -> int:
    """Check a checkpoint file's zip structure; return its records' total size (bytes).

    Refused: files over :data:`MAX_FILE_BYTES`; more than
    :data:`MAX_ARCHIVE_ENTRIES` records; compressed records (``torch.save``
    writes them uncompressed, and a small deflated record can expand to
    gigabytes); declared sizes that add up to more than the file holds; a
    pickled structure over :data:`MAX_PICKLE_BYTES`. Reads only the zip's
    directory, never the records.
    """
    import zipfile

    if size > MAX_FILE_BYTES:
        raise fail(label, f"is {size / 2**30:.1f} GiB, over this vae_course's limit of "
                          f"{MAX_FILE_BYTES / 2**30:.0f} GiB for a checkpoint; it was not loaded")
    entries, cd_bytes = _central_directory(f, size, label)
    if entries > MAX_ARCHIVE_ENTRIES or cd_bytes > size:
        raise fail(label, f"declares {entries} records (a checkpoint has at most {MAX_ARCHIVE_ENTRIES}); it is "
                          f"damaged or was not written by vae_course, and was not loaded")
    f.seek(0)
    try:
        infos = zipfile.ZipFile(f).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as err:
        raise fail(label, f"is truncated or corrupted ({type(err).__name__}); it was not loaded and is left as "
                          f"it is: use an earlier copy") from None
    declared = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise fail(label, f"holds a compressed record ({info.filename!r}), which torch.save never writes "
                              f"and which could expand far beyond the file's size; it was not loaded")
        declared += info.file_size
        if info.filename.endswith("data.pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise fail(label, f"has a {info.file_size / 2**20:.0f} MB pickled structure (the limit is "
                              f"{MAX_PICKLE_BYTES / 2**20:.0f} MB); it was not loaded")
    if declared > size:
        raise fail(label, f"declares {declared} bytes of records but the file holds {size}; it is damaged or "
                          f"crafted, and was not loaded")
    return declared


# ---------------------------------------------------------------- 2. the structure
def is_dense(t: Tensor) -> bool:
    """True when ``t``'s elements occupy distinct, gap-free memory (any dimension
    order, e.g. ``channels_last``): no zero strides, no overlaps."""
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1)
    expected = 1
    for stride, size in dims:
        if size == 0:
            return True
        if stride != expected:
            return False
        expected *= size
    return True


def check_tensors(obj: Any, budget_bytes: int, label: str) -> None:
    """Walk everything loaded: nesting at most :data:`MAX_NESTING` deep; every
    tensor strided, dense (see :func:`is_dense`), on the CPU, of a dtype in
    :data:`PLAIN_DTYPES`; all tensors together no larger than ``budget_bytes``
    (the bytes the file's records hold), so that hashing or copying them
    allocates at most what the file holds."""
    total = 0
    stack = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise fail(label, f"is nested more than {MAX_NESTING} levels deep; it is damaged or crafted")
        if isinstance(item, Tensor):
            if item.layout != torch.strided or item.device.type != "cpu" or item.dtype not in PLAIN_DTYPES:
                raise fail(label, f"holds a tensor of an unexpected kind ({item.layout}, {item.dtype}, "
                                  f"{item.device.type}); it was not used")
            if not is_dense(item):
                raise fail(label, f"holds a tensor of shape {tuple(item.shape)} with overlapping memory (strides "
                                  f"{item.stride()}), which torch.save never writes from a model; it was not used")
            total += item.numel() * item.element_size()
            if total > budget_bytes:
                raise fail(label, "holds tensors that share memory and add up to more than the file holds; "
                                  "it is damaged or crafted, and was not used")
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            stack.extend((k, depth + 1) for k in item.keys() if not isinstance(k, (str, int)))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)


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
            raise fail(label, f": {name}[{key!r}] should be a finite number, found {value!r:.40}")


def check_history(history: Any, label: str) -> None:
    if not isinstance(history, list) or len(history) > MAX_EPOCHS:
        raise fail(label, f": history should be a list of per-epoch records, found {type(history).__name__}")
    for i, record in enumerate(history):
        check_record(record, f"history[{i}]", label)


def meta_model(name: Any, config: Any, label: str) -> nn.Module:
    """The model ``name(**config)`` built on the ``meta`` device (no memory), after
    checking every size against :data:`MODEL_SIZE_LIMITS` and the parameter
    count against :data:`MAX_MODEL_PARAMETERS`."""
    if not isinstance(name, str) or name not in MODELS:
        raise fail(label, f"describes a model this vae_course cannot build: {name!r:.60} is not one of "
                          f"{sorted(MODELS)}")
    if not isinstance(config, dict):
        raise fail(label, f": model_config should be a dict, found {type(config).__name__}")
    for key, value in config.items():
        if key not in MODEL_SIZE_LIMITS:
            raise fail(label, f"describes a model this vae_course cannot build: unknown setting {key!r:.60}")
        limit = MODEL_SIZE_LIMITS[key]
        if not is_int(value) or not 1 <= value <= limit:
            raise fail(label, f"describes a model this vae_course cannot build: model_config {key} should be "
                              f"an integer from 1 to {limit}, found {value!r:.40}")
    try:
        with torch.device("meta"):
            model = build_model(name, **config)
    except (ValueError, TypeError) as err:
        raise fail(label, f"describes a model this vae_course cannot build: {err}") from None
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_MODEL_PARAMETERS:
        raise fail(label, f"describes a {name!r} with {n:,} parameters, over this vae_course's limit of "
                          f"{MAX_MODEL_PARAMETERS:,}; it was not built")
    return model


def check_core_fields(state: dict, label: str) -> None:
    """Types and ranges of the fields every checkpoint has (after the version check)."""
    kinds = {"model_name": str, "model_config": dict, "model_state": dict, "epoch": int, "history": list}
    for key, kind in kinds.items():
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            article = "an" if kind is int else "a"
            raise fail(label, f": {key} should be {article} {kind.__name__}, found {type(state[key]).__name__}")
    if not 0 <= state["epoch"] < 2**63:
        raise fail(label, f": epoch should be a whole number >= 0, found {state['epoch']:.3g}")
    meta_model(state["model_name"], state["model_config"], label)
    for key, value in state["model_state"].items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise fail(label, f": model_state should map parameter names to tensors, found {key!r:.60}")
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


def check_train_config(config: Any, label: str) -> None:
    """A dict of setting names to plain values (None, bool, int, finite float, short str)."""
    if not isinstance(config, dict) or len(config) > MAX_RECORD_KEYS:
        raise fail(label, f": train_config should be a dict of settings, found {type(config).__name__}")
    for key, value in config.items():
        if not isinstance(key, str) or len(key) > MAX_TEXT:
            raise fail(label, f": train_config has a key {key!r:.60} that is not a short string")
        plain = value is None or isinstance(value, bool) or is_finite_number(value) or (
            isinstance(value, str) and len(value) <= MAX_TEXT)
        if not plain:
            raise fail(label, f": train_config {key} should be a plain setting (number, text, true/false or "
                              f"none), found {value!r:.40}")


# ---------------------------------------------------------------- 3. against live objects
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


_ADAM_STATE = {"step", "exp_avg", "exp_avg_sq"}
_NONNEGATIVE_STATE = {"exp_avg_sq", "max_exp_avg_sq"}  # sqrt is taken of these
_SAME_BEHAVIOUR = ("amsgrad", "maximize", "decoupled_weight_decay")  # must agree to continue the same run


def _group_settings(saved: dict, current: dict, label: str) -> dict:
    """The current group's settings with the saved numbers (lr, betas, eps,
    weight_decay) checked and taken over; implementation switches (fused,
    foreach, capturable) stay as this optimizer was built for this device."""
    group = {k: v for k, v in current.items() if k != "params"}
    for key in _SAME_BEHAVIOUR:
        if key in saved and key in current and (not isinstance(saved[key], bool) or saved[key] != current[key]):
            raise fail(label, f": optimizer setting {key}={saved[key]!r:.20} differs from this optimizer's "
                              f"{current[key]!r}; it cannot continue the same run")
    rules = {"lr": lambda v: is_finite_number(v) and v >= 0, "eps": lambda v: is_finite_number(v) and v > 0,
             "weight_decay": lambda v: is_finite_number(v) and v >= 0,
             "betas": lambda v: isinstance(v, (tuple, list)) and len(v) == 2
             and all(is_finite_number(b) and 0 <= b < 1 for b in v)}
    for key, ok in rules.items():
        if key in saved and key in current:
            if not ok(saved[key]):
                raise fail(label, f": optimizer setting {key} has an impossible value {saved[key]!r:.40}")
            group[key] = tuple(saved[key]) if key == "betas" else saved[key]
    return group


def _step_of(value: Any, label: str) -> Tensor:
    """Adam's step count: a whole, finite, non-negative number, as a 0-dim float tensor."""
    if isinstance(value, Tensor):
        if value.dim() != 0 or value.dtype not in (torch.float32, torch.float64):
            raise fail(label, f": optimizer step should be a number, found a {value.dtype} tensor of shape "
                              f"{tuple(value.shape)}")
        number, dtype = value.item(), value.dtype
    elif is_number(value):
        number, dtype = float(value), torch.float32
    else:
        raise fail(label, f": optimizer step should be a number, found {type(value).__name__}")
    if not (math.isfinite(number) and number >= 0 and number == int(number)):
        raise fail(label, f": optimizer step should be a whole number >= 0, found {number!r}")
    return torch.tensor(number, dtype=dtype)


def _param_state(saved: Any, param: Tensor, expected_keys: set | None, label: str) -> dict:
    if not isinstance(saved, dict):
        raise fail(label, f": optimizer state should be a dict per parameter, found {type(saved).__name__}")
    if not saved:
        return {}
    if expected_keys is not None and set(saved) != expected_keys:
        raise fail(label, f": optimizer state has entries {sorted(map(str, saved))[:6]}, Adam keeps "
                          f"{sorted(expected_keys)}")
    out = {}
    for key, value in saved.items():
        if key == "step":
            out[key] = _step_of(value, label)
            continue
        if not isinstance(value, Tensor) or value.shape != param.shape or value.dtype != param.dtype:
            found = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
            raise fail(label, f": optimizer state {key!r:.40} is {found}, its parameter is "
                              f"{tuple(param.shape)} {param.dtype}; it does not belong to this model")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise fail(label, f": optimizer state {key!r} has NaN or infinite values; use an earlier checkpoint")
        if key in _NONNEGATIVE_STATE and bool((value < 0).any()):
            raise fail(label, f": optimizer state {key!r} has negative values (it is a mean of squares)")
        # A fresh tensor with the parameter's own layout and device: what the fused
        # kernels assume when they walk the parameter and its state side by side.
        out[key] = torch.empty_strided(param.shape, param.stride(), dtype=param.dtype,
                                       device=param.device).copy_(value)
    return out


def optimizer_state_for(optimizer: torch.optim.Optimizer, saved: Any, label: str) -> dict:
    """A checked copy of ``saved`` that ``optimizer.load_state_dict`` can take safely.

    Checks the parameter-group count and sizes, that every state entry belongs to
    a parameter and matches its shape and dtype (a wrong-shape state makes the
    fused Adam kernel write out of bounds), finite values, and ``step`` >= 0.
    """
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        raise fail(label, ": optimizer_state should be a dict with 'state' and 'param_groups'")
    groups, current = saved["param_groups"], optimizer.param_groups
    if len(groups) != len(current):
        raise fail(label, f": optimizer has {len(groups)} parameter groups, this one has {len(current)}")
    owners: dict[int, tuple[Tensor, dict]] = {}
    new_groups = []
    for i, (group, now) in enumerate(zip(groups, current)):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(now["params"]) or not all(is_int(j) for j in ids):
            raise fail(label, f": optimizer group {i} should list {len(now['params'])} parameter numbers")
        for j, param in zip(ids, now["params"]):
            if j in owners:
                raise fail(label, f": optimizer lists parameter number {j} twice")
            owners[j] = (param, now)
        new_groups.append({**_group_settings(group, now, label), "params": list(ids)})
    adam = isinstance(optimizer, torch.optim.Adam)
    new_state = {}
    for j, entry in saved["state"].items():
        if j not in owners:
            raise fail(label, f": optimizer has state for parameter {j!r:.20}, which no group lists")
        param, group = owners[j]
        expected = (_ADAM_STATE | ({"max_exp_avg_sq"} if group.get("amsgrad") else set())) if adam else None
        new_state[j] = _param_state(entry, param.detach(), expected, label)
    return {"state": new_state, "param_groups": new_groups}


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
