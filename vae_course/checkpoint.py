"""Saving and loading training state: the one owner of the checkpoint format.

A checkpoint is a plain ``dict`` of tensors and Python numbers, strings, lists
and dicts. That makes it loadable with ``torch.load(path, weights_only=True)``,
which refuses any pickled Python object: a checkpoint downloaded from a
stranger cannot run code on your machine. Everything in it is checked before
use (see :mod:`vae_course.checkpoint_checks`), so a damaged or crafted file
gives one :class:`CheckpointError` line instead of a crash or a huge allocation.

What a training checkpoint holds (written by :func:`training_state`)::

    format_version      int, FORMAT_VERSION
    checksum            str, SHA-256 of everything else (detects damage, not tampering)
    model_name          str, a key of vae_course.models.MODELS
    model_config        dict, the model's constructor arguments (model.config)
    model_state         dict name -> tensor (model.state_dict(), on the CPU)
    optimizer_state     dict, optimizer.state_dict()
    scaler_state        dict, GradScaler.state_dict() ({} without fp16 loss scaling)
    train_config        dict, dataclasses.asdict(TrainConfig)
    dataset, binarize   str, copies of train_config's (for readers of the raw dict)
    epoch               int >= 0, epochs completed
    interrupted         bool, saved on Ctrl-C part-way through epoch + 1
    history             list of dicts of finite numbers, one per epoch
    rng                 dict, vae_course.rng.get_rng_state()
    data_generator      uint8 tensor, the batch-order generator's state
    noise_generator     uint8 tensor, the binarization-noise generator's state
    lr_schedule         dict: name, base_lr, epochs, lr (the rate at the last step)
    vae_course_version, torch_version   str

Format versions: 1, the first (its checksum was optional); 2, the same fields
with the checksum compulsory. :func:`migrate` reads both.

Read fields with the accessors (:func:`train_config_of`, :func:`history_of`,
:func:`epoch_of`, :func:`model_name_of`, :func:`model_from_checkpoint`) rather
than by indexing the dict, so that a later format changes one module.
"""
from __future__ import annotations

import dataclasses
import io
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint_checks import (
    CheckpointError, check_archive, check_core_fields, check_generator_state, check_model_state,
    check_rng_state, check_scaler_state, check_tensors, check_train_config, fail, is_finite_number, is_int,
    meta_model, optimizer_state_for,
)
from .hashing import state_checksum
from .models import build_model
from .rng import get_rng_state, set_rng_state
from .run_folder import atomic_write_bytes

__all__ = [
    "FORMAT_VERSION", "REQUIRED_KEYS", "TRAINING_KEYS", "CheckpointError", "save_checkpoint", "load_checkpoint",
    "migrate", "training_state", "restore_training_state", "model_from_checkpoint", "load_weights",
    "train_config_of", "history_of", "epoch_of", "model_name_of", "torch_version_of",
]

FORMAT_VERSION = 2
OLDEST_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_config", "model_state", "epoch", "history")
# What restore_training_state needs beyond REQUIRED_KEYS ("scaler_state" and
# "lr_schedule" are optional: absent in checkpoints from before they existed).
TRAINING_KEYS = REQUIRED_KEYS + ("optimizer_state", "train_config", "rng", "data_generator", "noise_generator")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically, with a SHA-256 ``checksum`` added.

    The bytes go to a temporary file with a unique name in the same folder, are
    flushed to disk, and only then renamed over ``path`` with ``os.replace``
    (:func:`vae_course.run_folder.atomic_write_bytes`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A checksum of the contents lets load_checkpoint detect bit rot and partial copies.
    state = {**{k: v for k, v in state.items() if k != "checksum"}}
    state["checksum"] = state_checksum(state)
    # Serialise in memory first, then let the run folder's one atomic writer put the bytes
    # on disk: a full disk is then a plain OSError (ENOSPC), and a crash at any moment
    # leaves the old file or the new one, never half of one.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------- loading
def _read(path: Path, label: str) -> Any:
    """``torch.load`` of a file that passed :func:`check_archive`, then :func:`check_tensors`.

    The file is opened once, so the bytes checked are the bytes loaded.
    """
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise fail(label, "is a folder, not a file: pass the checkpoint.pt inside it")
        if not stat.S_ISREG(mode):  # a pipe would block, a device never end
            raise fail(label, "is not a regular file (a pipe or a device?); pass a checkpoint.pt file")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            declared = check_archive(f, size, label)
            f.seek(0)
            state = torch.load(f, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint: no file at {path}") from None
    except OSError as err:  # permissions, a lock, a failing disk: the file may be fine
        raise fail(label, f"cannot be read ({err.strerror or type(err).__name__}); check that it is readable "
                          f"by you and not locked by another program. The file was not changed.") from None
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise fail(label, "is truncated or corrupted, or is not a PyTorch checkpoint, and cannot be read "
                              "safely (nothing was executed); it is left as it is: use an earlier copy") from None
        lines = [ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln]
        first = lines[0].replace("WeightsUnpickler error: ", "") if lines else type(err).__name__
        raise fail(label, f"was refused: it contains Python objects other than tensors and plain types, which "
                          f"could run code when loaded (weights_only=True). Nothing was executed. Only load "
                          f"checkpoints you trust. ({first[:160]})") from None
    except Exception as err:  # noqa: BLE001 - damaged bytes can fail anywhere inside torch.load
        # (RuntimeError, EOFError, BadZipFile, KeyError, IndexError ... all mean "damaged")
        raise fail(label, f"is truncated or corrupted and cannot be read ({type(err).__name__}); it is left "
                          f"as it is: use an earlier copy") from None
    check_tensors(state, declared, label)
    return state


def _check_version(version: Any, label: str) -> None:
    if not is_int(version) or version < OLDEST_VERSION:
        raise fail(label, f"has format version {version!r:.20}, which no vae_course wrote; it is damaged or "
                          f"not a vae_course checkpoint")
    if version > FORMAT_VERSION:
        raise fail(label, f"has format version {version}, newer than this vae_course reads ({OLDEST_VERSION} "
                          f"to {FORMAT_VERSION}): upgrade vae_course (pip install -U vae-course) to load it")


def _check_shape(state: Any, label: str) -> None:
    if not isinstance(state, dict):
        raise fail(label, f": expected a dict, found {type(state).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise fail(label, f"is not a vae_course checkpoint: missing {missing}")
    _check_version(state["format_version"], label)


def _verify_checksum(state: dict, label: str) -> None:
    stored = state.get("checksum")
    if stored is None:
        raise fail(label, "has no checksum, so damage to it could not be detected, and it was not loaded. If it "
                          "is yours and you trust it, add one: vae_course.checkpoint.save_checkpoint("
                          "torch.load(path, weights_only=True), path)")
    if not isinstance(stored, str) or state_checksum({k: v for k, v in state.items() if k != "checksum"}) != stored:
        raise fail(label, "is corrupted: its contents do not match the checksum stored when it was saved (a "
                          "damaged disk, or an incomplete copy?); it is left as it is: use an earlier copy")


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a checkpoint dict of any readable format version to :data:`FORMAT_VERSION`.

    Returns a new dict (``state`` is not changed). Raises :class:`CheckpointError`
    for a version newer than this vae_course reads (upgrade vae_course) or one
    no vae_course wrote.
    """
    if not isinstance(state, dict):
        raise fail("checkpoint", f": expected a dict, found {type(state).__name__}")
    _check_version(state.get("format_version"), "checkpoint")
    state = dict(state)
    if state["format_version"] == 1:
        # Version 2 has the same fields and only makes the checksum compulsory,
        # which load_checkpoint checks before migrating.
        state["format_version"] = 2
    return state


def load_checkpoint(
    path: str | os.PathLike,
    expect_model: str | None = None,
    expect_latent_dim: int | None = None,
) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``, tensors to the CPU).

    Before ``torch.load`` the file's zip structure is checked (bounded record
    count and sizes, no compressed records), so a small file cannot make the
    loader allocate gigabytes. After it: every tensor dense and within the
    file's size, the format version, the fields' types and ranges (epoch >= 0,
    a history of finite numbers, a model config within sane sizes), finite
    weights, and the SHA-256 checksum (compulsory). Older format versions are
    upgraded with :func:`migrate`.

    Raises :class:`CheckpointError` with one line saying what is wrong and what
    to do when the file is missing or unreadable, is not a checkpoint, is
    truncated, corrupted or crafted, contains pickled Python objects (refused,
    nothing is executed), or is for another model / latent size than expected.
    """
    path = Path(path)
    label = f"checkpoint {path}"
    state = _read(path, label)
    _check_shape(state, label)
    check_core_fields(state, label)
    _verify_checksum(state, label)
    state = migrate(state)
    if expect_model is not None and state["model_name"] != expect_model:
        raise fail(label, f"is for model {state['model_name']!r}, but {expect_model!r} was expected")
    found_latent = state["model_config"].get("latent_dim")
    if expect_latent_dim is not None and found_latent != expect_latent_dim:
        raise fail(label, f"has latent_dim={found_latent}, but latent_dim={expect_latent_dim} was expected")
    return state


# ---------------------------------------------------------------- accessors
def train_config_of(state: dict[str, Any], config_type: type | None = None) -> Any:
    """The training settings a checkpoint was written with.

    Without ``config_type``: a new ``dict`` of setting name to value. With a
    dataclass type (e.g. ``TrainConfig``): an instance built from the settings
    that type knows (others, from a newer vae_course, are ignored) and checked
    with its ``validate()``; a bad value is a :class:`CheckpointError`.
    """
    config = state.get("train_config")
    if config is None:
        raise CheckpointError("checkpoint has no training settings (train_config): it holds weights only, so "
                              "it cannot be resumed or evaluated on its dataset")
    check_train_config(config, "checkpoint")
    if config_type is None:
        return dict(config)
    known = {f.name for f in dataclasses.fields(config_type)}
    try:
        instance = config_type(**{k: v for k, v in config.items() if k in known})
        if hasattr(instance, "validate"):
            instance.validate()
    except (TypeError, ValueError) as err:
        raise fail("checkpoint", f": train_config is not valid: {err}") from None
    return instance


def history_of(state: dict[str, Any]) -> list[dict[str, float]]:
    """The per-epoch records (a new list of new dicts)."""
    return [dict(record) for record in state["history"]]


def epoch_of(state: dict[str, Any]) -> int:
    """How many epochs the checkpoint's model was trained for."""
    return int(state["epoch"])


def model_name_of(state: dict[str, Any]) -> str:
    """The model's name, a key of :data:`vae_course.models.MODELS` (e.g. ``"vae"``)."""
    return str(state["model_name"])


def torch_version_of(state: dict[str, Any]) -> str | None:
    """The PyTorch version that wrote the checkpoint (``None`` if not recorded)."""
    version = state.get("torch_version")
    return version if isinstance(version, str) else None


def model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights.

    The model is first built on the ``meta`` device (no memory) to check its size
    and every weight's shape and dtype; the real model is built only after.
    """
    if not isinstance(state, dict):
        raise fail("checkpoint", f": expected a dict, found {type(state).__name__}")
    meta = meta_model(state.get("model_name"), state.get("model_config"), "checkpoint")
    weights = state.get("model_state")
    if not isinstance(weights, dict):
        raise fail("checkpoint", f": model_state should be a dict, found {type(weights).__name__}")
    check_model_state(meta, weights, "checkpoint")
    model = build_model(state["model_name"], **state["model_config"])
    load_weights(model, state)
    return model


def load_weights(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a checkpoint's weights into ``model``, naming any mismatch clearly.

    Every tensor's name, shape and dtype must equal the model's, and the
    weights must be finite; nothing is loaded otherwise.
    """
    if getattr(model, "name", None) != state["model_name"]:
        raise CheckpointError(
            f"checkpoint holds a {state['model_name']!r} model, but a "
            f"{getattr(model, 'name', type(model).__name__)!r} was given"
        )
    expected = getattr(model, "config", {})
    if expected != state["model_config"]:
        raise CheckpointError(
            f"checkpoint's model settings {state['model_config']} differ from this model's {expected}"
        )
    check_model_state(model, state["model_state"], "checkpoint")
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as err:  # cannot happen after the check above; kept as one clear line
        detail = " ".join(str(err).split())[:300]
        raise CheckpointError(f"checkpoint's weights do not fit the {state['model_name']!r} model: {detail}") from None


# ---------------------------------------------------------------- training state
def training_state(trainer: Any, interrupted: bool = False) -> dict[str, Any]:
    """Everything needed to continue a run exactly where it stopped.

    ``trainer`` is duck-typed (this module does not import :mod:`vae_course.train`):
    it needs ``config`` (a dataclass with ``model``, ``dataset``, ``binarize``,
    ``lr``, ``lr_schedule``, ``epochs``), ``model``, ``optimizer``, ``scaler``,
    ``epoch``, ``history``, ``data_generator`` and ``noise_generator``.
    """
    from .version import __version__

    cfg = trainer.config
    return {
        "format_version": FORMAT_VERSION,
        "vae_course_version": __version__,
        "model_name": cfg.model,
        "model_config": dict(trainer.model.config),
        "model_state": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "optimizer_state": trainer.optimizer.state_dict(),
        "scaler_state": trainer.scaler.state_dict(),
        "train_config": dataclasses.asdict(cfg),
        "dataset": cfg.dataset,
        "binarize": cfg.binarize,
        "epoch": trainer.epoch,
        "interrupted": interrupted,
        "history": trainer.history,
        "rng": get_rng_state(),
        "data_generator": trainer.data_generator.get_state(),
        "noise_generator": trainer.noise_generator.get_state(),
        # The schedule is a function of progress (epoch, step) and these settings,
        # so they are all it needs to continue exactly.
        "lr_schedule": {"name": cfg.lr_schedule, "base_lr": cfg.lr, "epochs": cfg.epochs,
                        "lr": trainer.optimizer.param_groups[0]["lr"]},
        "torch_version": str(torch.__version__),
    }


def _check_schedule(schedule: Any, label: str) -> None:
    if schedule is None:
        return
    ok = isinstance(schedule, dict) and isinstance(schedule.get("name"), str) \
        and is_finite_number(schedule.get("lr")) and schedule["lr"] >= 0
    if not ok:
        raise fail(label, ": lr_schedule should be a dict with a 'name' and a finite, non-negative 'lr'")


def _check_train_config_agrees(state: dict, config_type: type, label: str) -> None:
    """``train_config`` must be a valid ``config_type`` and describe the model and
    data the rest of the checkpoint holds."""
    config = train_config_of(state, config_type)
    saved = state["train_config"]
    claims = {"model": state["model_name"], **state["model_config"],
              **{k: state[k] for k in ("dataset", "binarize") if k in state}}
    for key, value in claims.items():
        if saved.get(key) is not None and saved[key] != value:
            raise fail(label, f": train_config says {key}={saved[key]!r:.40} but the checkpoint holds {value!r:.40}; "
                              f"it is damaged or was edited")
    del config  # built only to validate


def _checked_training_state(trainer: Any, state: Any, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check every part of ``state`` against ``trainer``; return the state in the
    current format and the optimizer state to load."""
    state = migrate(state)
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise fail(label, f"is not a training checkpoint (missing {missing}); it can give a model "
                          f"(model_from_checkpoint) but cannot be resumed")
    check_core_fields(state, label)
    model = trainer.model
    if getattr(model, "name", None) != state["model_name"] or getattr(model, "config", None) != state["model_config"]:
        raise fail(label, f"holds a {state['model_name']!r} model with {state['model_config']}, but this trainer "
                          f"has a {getattr(model, 'name', type(model).__name__)!r} with "
                          f"{getattr(model, 'config', None)}")
    check_model_state(model, state["model_state"], label)
    _check_train_config_agrees(state, type(trainer.config), label)
    if len(state["history"]) != state["epoch"]:
        raise fail(label, f": history has {len(state['history'])} epochs but epoch is {state['epoch']}; it is "
                          f"damaged or was edited")
    optimizer = optimizer_state_for(trainer.optimizer, state["optimizer_state"], label)
    check_scaler_state(state.get("scaler_state", {}), label)
    check_rng_state(state["rng"], label)
    check_generator_state(state["data_generator"], trainer.data_generator, "data_generator", label)
    if trainer.noise_generator.device.type == "cpu" or _same_generator_kind(state["noise_generator"],
                                                                           trainer.noise_generator):
        check_generator_state(state["noise_generator"], trainer.noise_generator, "noise_generator", label)
    _check_schedule(state.get("lr_schedule"), label)
    return state, optimizer


def _same_generator_kind(saved: Any, generator: torch.Generator) -> bool:
    """Was ``saved`` written by a generator of ``generator``'s kind (CPU Mersenne Twister
    or a GPU's Philox: their states differ in size)?"""
    return isinstance(saved, torch.Tensor) and saved.numel() == generator.get_state().numel()


def restore_training_state(trainer: Any, state: dict[str, Any]) -> None:
    """Restore weights, optimizer, loss scaler, epoch, history and every
    random-number state from ``state`` into ``trainer`` (duck-typed as in
    :func:`training_state`).

    Everything is validated first (each tensor's shape, dtype and finiteness
    against the model and optimizer, the optimizer's groups and steps, the
    generators' states), and only then loaded: a bad checkpoint raises
    :class:`CheckpointError` and leaves the trainer untouched.
    """
    state, optimizer_state = _checked_training_state(trainer, state, "checkpoint")
    load_weights(trainer.model, state)
    device = getattr(trainer, "device", None)
    if device is not None:
        trainer.model.to(device)
    trainer.optimizer.load_state_dict(optimizer_state)
    if state.get("scaler_state"):
        trainer.scaler.load_state_dict(state["scaler_state"])
    trainer.epoch = int(state["epoch"])
    trainer.history = history_of(state)
    set_rng_state(state["rng"])
    trainer.data_generator.set_state(state["data_generator"])
    # The binarization noise continues exactly when the run resumes on the same kind of
    # device (a CPU state does not fit a CUDA generator: it then starts from its seed).
    if trainer.noise_generator.device.type == "cpu" or _same_generator_kind(state["noise_generator"],
                                                                           trainer.noise_generator):
        trainer.noise_generator.set_state(state["noise_generator"])
    schedule = state.get("lr_schedule")  # absent in checkpoints from before schedules existed
    if schedule and schedule["name"] == trainer.config.lr_schedule:
        for group in trainer.optimizer.param_groups:  # the next step recomputes it from progress
            group["lr"] = schedule["lr"]
