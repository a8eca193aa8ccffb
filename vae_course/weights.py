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
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .hashing import file_digest
from .models import build_model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"
STORED_DTYPE = torch.float16
# Settings that do not change the trained weights (as in pretrained's cache key).
_NOT_COMPARED = ("device", "log_every")


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
    """The manifest (name -> entry); empty when nothing ships."""
    path = Path(directory or weights_dir()) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def sha256_of(path: Path) -> str:
    """The SHA-256 of a shipped file, as its manifest records it."""
    return file_digest(path, "sha256")


def load_shipped(name: str, directory: Path | None = None) -> dict[str, Tensor] | None:
    """The shipped state dict of ``name`` in float32, or ``None`` if ``name`` does not ship.

    The file's SHA-256 is checked against the manifest first; a mismatch (a
    damaged or replaced file) raises :class:`ShippedWeightsError` with one line.
    """
    directory = Path(directory or weights_dir())
    entry = read_manifest(directory).get(name)
    if entry is None:
        return None
    path = directory / entry["file"]
    if not path.is_file():
        raise ShippedWeightsError(f"{path}: the shipped weights of {name!r} are missing; reinstall vae-course "
                                  "or set VAE_COURSE_RETRAIN=1 to train the model instead")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise ShippedWeightsError(f"{path}: SHA-256 {digest[:12]}… is not the manifest's {entry['sha256'][:12]}… "
                                  "(a damaged file); reinstall vae-course or set VAE_COURSE_RETRAIN=1 to train instead")
    state = torch.load(path, map_location="cpu", weights_only=True)
    # fp16 storage only: compute in float32 as if the model had never been stored.
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _compared(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _NOT_COMPARED}


def shipped_model(name: str, directory: Path | None = None,
                  expected: dict[str, Any] | None = None) -> nn.Module | None:
    """The shipped model ``name`` in eval mode on the CPU, or ``None`` when there is none,
    when ``VAE_COURSE_RETRAIN=1``, or when it was trained with other settings than
    ``expected`` (the training configuration the caller would use, as a dict; then the
    caller trains, and this says why)."""
    entry = _usable_entry(name, directory, expected)
    if entry is None:
        return None
    model = build_model(entry["model_name"], **entry["model_config"])
    model.load_state_dict(load_shipped(name, directory))
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
    if expected is not None and _compared(entry["config"]) != _compared(expected):
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
