"""Saving and loading training state — atomically, and without unpickling code.

A checkpoint is a plain ``dict`` of tensors and Python numbers, strings, lists
and dicts (see :data:`REQUIRED_KEYS`). That makes it loadable with
``torch.load(path, weights_only=True)``, which refuses any pickled Python
object: a checkpoint downloaded from a stranger cannot run code on your machine.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import build_model

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_config", "model_state", "epoch", "history")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unsafe, damaged, or for another model."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk,
    and only then renamed over ``path`` with ``os.replace`` (atomic on POSIX and
    Windows). A crash at any moment leaves either the old file or the new one,
    never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
        lines = [ln.strip() for ln in str(err).splitlines() if "WeightsUnpickler error" in ln]
        first = lines[0].replace("WeightsUnpickler error: ", "") if lines else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} was refused: it contains Python objects other than tensors and "
            f"plain types, which could run code when loaded (weights_only=True). Nothing was "
            f"executed. Only load checkpoints you trust. ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupted and cannot be read "
            f"({type(err).__name__}); re-create it, or use an earlier copy."
        ) from None
    _validate(state, path)
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


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights."""
    model = build_model(state["model_name"], **state["model_config"])
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
    model.load_state_dict(state["model_state"])
