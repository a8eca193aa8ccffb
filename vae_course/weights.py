"""Shipped weights: known-good trained models that install with the package.

Some models take too long to train on a learner's CPU (the long-run ConvVAE of
notebook 6: 158 epochs). Their weights ship in ``vae_course/weights/`` as fp16
files, listed in ``vae_course/weights/manifest.json``::

    "conv-vae-long": {
        "file": "conv-vae-long.fp16.pth",   # a state dict, float tensors stored as float16
        "sha256": "...",                    # of that file, checked before every load
        "dtype": "float16",
        "model_name": "conv-vae", "model_config": {...},   # what build_model needs
        "config": {...},                    # the full TrainConfig it was trained with
        "train_command": "python -m vae_course train ...",
        "test_elbo": ...                    # fp32 and shipped, equal to 2 decimals
    }

``pretrained(name)`` returns the shipped model when there is one whose training
configuration is the one ``pretrained`` would train (in smoke mode too: loading
is quicker than any training); set ``VAE_COURSE_RETRAIN=1`` to train instead
(and cache) as if nothing shipped. ``VAE_COURSE_WEIGHTS=<folder>`` points at
another folder of shipped weights (same layout). ``scripts/ship_weights.py
NAME CHECKPOINT`` writes a file and its manifest entry.

Shipped files pass the same validation layer as checkpoints
(:func:`vae_course.safe_load.read_torch_file`): a matching SHA-256 only says
the file is the one the manifest names, not that the manifest or the file is
sound, so the manifest's sizes are bounded before any model is built, the
file's structure is checked before it is unpickled (no compressed records, no
more tensor bytes than the model needs), and every weight must fit the model
and be finite.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .bounds import shown
from .checkpoint_checks import CheckpointError, check_history, check_model_state, check_train_config, meta_model
from .checkpoint_schema import model_bytes
from .config import TrainConfig, affects_weights
from .hashing import file_digest
from .models import build_model
from .safe_load import read_torch_file
from .safe_pickle import Node, PickleShape, entries

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"
STORED_DTYPE = torch.float16
# Settings that do not change the trained weights (declared on TrainConfig; pretrained's cache key skips them too).
_NOT_COMPARED = tuple(f.name for f in fields(TrainConfig) if not affects_weights(f))
# The manifest of the package's ten models is about 100 kB (with their histories).
MAX_MANIFEST_BYTES = 2 * 1024**2
_RETRAIN = "reinstall vae-course or set VAE_COURSE_RETRAIN=1 to train the model instead"


class ShippedWeightsError(ValueError):
    """A shipped weight file is missing, damaged, or does not fit its manifest entry."""


def retrain_requested() -> bool:
    """True when ``VAE_COURSE_RETRAIN=1``: ignore shipped weights and train."""
    return os.environ.get("VAE_COURSE_RETRAIN", "0").strip().lower() in {"1", "true", "yes"}


def weights_dir() -> Path:
    """The folder of shipped weights: the package's own, or ``$VAE_COURSE_WEIGHTS`` when set
    (an instructor's own set, or a test's)."""
    return Path(os.environ.get("VAE_COURSE_WEIGHTS") or WEIGHTS_DIR)


def read_manifest(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """The manifest (name -> entry); empty when nothing ships.

    Read with a size limit (:data:`MAX_MANIFEST_BYTES`); anything but a JSON object
    of entries is a :class:`ShippedWeightsError`. Each entry is checked when used.
    """
    path = Path(directory or weights_dir()) / MANIFEST
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        data = f.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ShippedWeightsError(f"{path}: over {MAX_MANIFEST_BYTES // 2**20} MB, far more than a manifest of "
                                  f"shipped weights holds; {_RETRAIN}")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ShippedWeightsError(f"{path}: is not valid JSON; {_RETRAIN}") from None
    if not isinstance(manifest, dict) or not all(isinstance(e, dict) for e in manifest.values()):
        raise ShippedWeightsError(f"{path}: should map model names to entries (JSON objects); {_RETRAIN}")
    return manifest


def sha256_of(path: Path) -> str:
    """The SHA-256 of a shipped file, as its manifest records it."""
    return file_digest(path, "sha256")


def _checked_entry(name: str, entry: dict[str, Any], directory: Path) -> nn.Module:
    """Check one manifest entry before anything is built from it; return its model on
    the ``meta`` device (no memory). Sizes are bounded like a checkpoint's."""
    label = f"the manifest entry of {name!r} in {directory / MANIFEST}"
    file = entry.get("file")
    if not isinstance(file, str) or not file or Path(file).name != file or file in (".", ".."):
        raise ShippedWeightsError(f"{label}: 'file' should name a file in that folder, found {shown(file)}; "
                                  f"{_RETRAIN}")
    sha = entry.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        raise ShippedWeightsError(f"{label}: 'sha256' should be 64 hexadecimal digits; {_RETRAIN}")
    try:
        model = meta_model(entry.get("model_name"), entry.get("model_config"), label)
        if "config" in entry:
            check_train_config(entry["config"], label)
        if "history" in entry:
            check_history(entry["history"], label)
    except CheckpointError as err:
        raise ShippedWeightsError(f"{err}; {_RETRAIN}") from None
    return model


def _shipped_schema(model: nn.Module) -> Any:
    """What a shipped file may hold, checked on its scanned pickle: a dict of the
    model's weight names to tensors, no more tensor bytes than the model's float32 weights."""
    budget, count = model_bytes(model)
    names = set(model.state_dict())

    def schema(shape: PickleShape) -> None:
        root = shape.root
        if not isinstance(root, Node) or root.kind != "dict":
            raise ValueError(": should hold a dict of weights")
        fields = entries(root)
        if root.length != count or (fields is not None and set(fields) != names):
            raise ValueError(f": does not hold the {count} weights of its model")
        if fields is not None and any(not isinstance(v, Node) or v.kind != "tensor" for v in fields.values()):
            raise ValueError(": should map weight names to tensors")
        if root.tensor_bytes > budget:
            raise ValueError(f": holds {root.tensor_bytes:,} bytes of tensors, more than its model's "
                             f"{budget:,}; it is damaged or crafted")

    return schema


def load_shipped(name: str, directory: Path | None = None) -> dict[str, Tensor] | None:
    """The shipped state dict of ``name`` in float32, or ``None`` if ``name`` does not ship.

    The manifest entry is checked first (bounded sizes), then the file's SHA-256
    against it; the file is read by the package's one safe reader and every weight
    must fit the model and be finite. Any failure is a :class:`ShippedWeightsError`
    with one line.
    """
    directory = Path(directory or weights_dir())
    entry = read_manifest(directory).get(name)
    if entry is None:
        return None
    model = _checked_entry(name, entry, directory)
    path = directory / entry["file"]
    if not path.is_file():
        raise ShippedWeightsError(f"{path}: the shipped weights of {name!r} are missing; {_RETRAIN}")
    if path.stat().st_size > 2 * model_bytes(model)[0] + 2**20:  # fp16 is half the float32 bytes
        raise ShippedWeightsError(f"{path}: {path.stat().st_size:,} bytes, far more than the weights of its "
                                  f"model; {_RETRAIN}")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise ShippedWeightsError(f"{path}: SHA-256 {digest[:12]}… is not the manifest's {entry['sha256'][:12]}… "
                                  f"(a damaged file); {_RETRAIN}")
    state = read_torch_file(path, _shipped_schema(model), noun="shipped weights", error=ShippedWeightsError)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ShippedWeightsError(f"{path}: should hold a dict of weights; {_RETRAIN}")
    # fp16 storage only: compute in float32 as if the model had never been stored.
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        check_model_state(model, state, f"shipped weights {path}")
    except CheckpointError as err:
        raise ShippedWeightsError(f"{err}; {_RETRAIN}") from None
    return state


def _compared(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that shape the weights; a setting newer than the manifest counts at its default
    (weights shipped before it existed were trained as its default trains)."""
    return {k: v for k, v in {**asdict(TrainConfig()), **config}.items() if k not in _NOT_COMPARED}


def shipped_model(name: str, directory: Path | None = None,
                  expected: dict[str, Any] | None = None) -> nn.Module | None:
    """The shipped model ``name`` in eval mode on the CPU, or ``None`` when there is none,
    when ``VAE_COURSE_RETRAIN=1``, or when it was trained with other settings than
    ``expected`` (the training configuration the caller would use, as a dict; then the
    caller trains, and this says why)."""
    entry = _usable_entry(name, directory, expected)
    if entry is None:
        return None
    weights = load_shipped(name, directory)  # every check first: then building allocates what they allow
    model = build_model(entry["model_name"], **entry["model_config"])
    model.load_state_dict(weights)
    return model.eval()


def shipped_history(name: str, directory: Path | None = None,
                    expected: dict[str, Any] | None = None) -> list[dict[str, float]] | None:
    """The per-epoch training history recorded when ``name``'s weights were shipped
    (``None`` under the same conditions as :func:`shipped_model`)."""
    entry = _usable_entry(name, directory, expected)
    return None if entry is None else list(entry.get("history") or [])


def _usable_entry(name: str, directory: Path | None, expected: dict[str, Any] | None) -> dict[str, Any] | None:
    if retrain_requested():
        return None
    entry = read_manifest(directory).get(name)
    if entry is None:
        return None
    _checked_entry(name, entry, Path(directory or weights_dir()))
    if expected is not None and _compared(entry.get("config", {})) != _compared(expected):
        print(f"The shipped weights of {name!r} were trained with other settings than requested; training instead.")
        return None
    return entry


def fp16_state(model_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict for shipping: floating tensors as float16 (half the bytes), the rest as is."""
    return {k: v.detach().cpu().to(STORED_DTYPE) if v.is_floating_point() else v.detach().cpu()
            for k, v in model_state.items()}


def write_manifest_entry(name: str, entry: dict[str, Any] | None, directory: Path | None = None) -> None:
    """Set (or, with ``None``, remove) one manifest entry; the file is replaced atomically."""
    directory = Path(directory or weights_dir())
    manifest = read_manifest(directory)
    if entry is None:
        manifest.pop(name, None)
    else:
        manifest[name] = entry
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(directory / MANIFEST)


def write_shipped(name: str, state: dict[str, Any], train_command: str, extra: dict[str, Any] | None = None,
                  directory: Path | None = None) -> dict[str, Any]:
    """Write ``<name>.fp16.pth`` from a training checkpoint ``state`` and its manifest entry.

    ``state`` is what :func:`~vae_course.checkpoint.load_checkpoint` returns. The
    file is written under a temporary name and renamed, then the manifest entry
    is set, so an interrupted run never leaves an entry without its file.
    Returns the new manifest entry (it also keeps the per-epoch ``history``).
    """
    directory = Path(directory or weights_dir())
    directory.mkdir(parents=True, exist_ok=True)
    filename = f"{name}.fp16.pth"
    tmp = directory / f".{filename}.tmp"
    torch.save(fp16_state(state["model_state"]), tmp)
    entry = {
        "file": filename,
        "sha256": sha256_of(tmp),
        "dtype": str(STORED_DTYPE).replace("torch.", ""),
        "model_name": state["model_name"],
        "model_config": dict(state["model_config"]),
        "config": dict(state["train_config"]),
        "epochs": int(state["epoch"]),
        "history": state.get("history", []),
        "train_command": train_command,
        **(extra or {}),
    }
    tmp.replace(directory / filename)
    write_manifest_entry(name, entry, directory)
    return entry
