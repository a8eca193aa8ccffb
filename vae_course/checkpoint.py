"""Saving and loading training state — atomically, and without unpickling code.

A checkpoint is a plain ``dict`` of tensors and Python numbers, strings, lists
and dicts (see :data:`REQUIRED_KEYS`). That makes it loadable with
``torch.load(path, weights_only=True)``, which refuses any pickled Python
object: a checkpoint downloaded from a stranger cannot run code on your machine.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import build_model

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_config", "model_state", "epoch", "history")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unsafe, damaged, or for another model."""


def _digest(obj: Any, h: "hashlib._Hash | None" = None) -> str:
    """A SHA-256 of everything in a checkpoint (tensor bytes, shapes, dtypes, and
    the plain values), so a flipped bit on disk is caught at load time instead of
    silently giving wrong weights. Dict keys are visited in sorted order."""
    top = h is None
    h = hashlib.sha256() if top else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"D")
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(b"L" if isinstance(obj, list) else b"U")
        for item in obj:
            _digest(item, h)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())
    return h.hexdigest() if top else ""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk,
    and only then renamed over ``path`` with ``os.replace`` (atomic on POSIX and
    Windows). A crash at any moment leaves either the old file or the new one,
    never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A checksum of the contents lets load_checkpoint detect bit rot and partial copies.
    state = {**{k: v for k, v in state.items() if k != "checksum"}}
    state["checksum"] = _digest(state)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file readable by its owner only; give it the usual
        # permissions (0666 minus the umask), like a file written with open().
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike,
    expect_model: str | None = None,
    expect_latent_dim: int | None = None,
) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``, tensors to the CPU).

    Raises :class:`CheckpointError` with a readable message when the file is
    missing, is not a checkpoint, is truncated or corrupted, contains pickled
    Python objects (refused, nothing is executed), or is for another model /
    latent size than the one expected.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: no file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            # Not a disallowed class or function: a damaged file, or not a torch checkpoint at all.
            raise CheckpointError(
                f"checkpoint {path} is truncated or corrupted, or is not a PyTorch checkpoint, and cannot "
                f"be read safely (nothing was executed); re-create it, or use an earlier copy."
            ) from None
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln]
        first = lines[0].replace("WeightsUnpickler error: ", "") if lines else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} was refused: it contains Python objects other than tensors and "
            f"plain types, which could run code when loaded (weights_only=True). Nothing was "
            f"executed. Only load checkpoints you trust. ({first[:160]})"
        ) from None
    except Exception as err:  # noqa: BLE001 - garbage bytes can fail anywhere inside torch.load
        # (RuntimeError, EOFError, BadZipFile, OSError, KeyError, IndexError ... all mean "damaged")
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted and cannot be read "
            f"({type(err).__name__}); re-create it, or use an earlier copy."
        ) from None
    _validate(state, path)
    if "checksum" in state and _digest({k: v for k, v in state.items() if k != "checksum"}) != state["checksum"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: its contents do not match the checksum stored when it was "
            f"saved (a damaged disk, or an incomplete copy?); re-create it, or use an earlier copy."
        )
    if expect_model is not None and state["model_name"] != expect_model:
        raise CheckpointError(
            f"checkpoint {path} is for model {state['model_name']!r}, but {expect_model!r} was expected"
        )
    found_latent = state["model_config"].get("latent_dim")
    if expect_latent_dim is not None and found_latent != expect_latent_dim:
        raise CheckpointError(
            f"checkpoint {path} has latent_dim={found_latent}, but latent_dim={expect_latent_dim} was expected"
        )
    return state


def _validate(state: Any, path: Path) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, found {type(state).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a vae_course checkpoint: missing {missing}")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state['format_version']}, "
            f"this vae_course reads version {FORMAT_VERSION}"
        )
    kinds = {"model_name": str, "model_config": dict, "model_state": dict, "epoch": int, "history": list}
    for key, kind in kinds.items():
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise CheckpointError(
                f"checkpoint {path}: {key} should be a {kind.__name__}, found {type(state[key]).__name__}"
            )


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights."""
    try:
        model = build_model(state["model_name"], **state["model_config"])
    except ValueError as err:
        raise CheckpointError(f"checkpoint describes a model this vae_course cannot build: {err}") from None
    load_weights(model, state)
    return model


def load_weights(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a checkpoint's weights into ``model``, naming any mismatch clearly."""
    if getattr(model, "name", None) != state["model_name"]:
        raise CheckpointError(
            f"checkpoint holds a {state['model_name']!r} model, but a {getattr(model, 'name', type(model).__name__)!r} was given"
        )
    expected = getattr(model, "config", {})
    if expected != state["model_config"]:
        raise CheckpointError(
            f"checkpoint's model settings {state['model_config']} differ from this model's {expected}"
        )
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as err:  # missing / unexpected / wrongly shaped tensors
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"checkpoint's weights do not fit the {state['model_name']!r} model: {detail}") from None
