"""Saving and loading training state: the one owner of the checkpoint format.

A checkpoint is a plain ``dict`` of tensors and Python numbers, strings, lists
and dicts. That makes it loadable with ``torch.load(path, weights_only=True)``,
which refuses any pickled Python object: a checkpoint downloaded from a
stranger cannot run code on your machine. Everything in it is checked before
use, so a damaged or crafted file gives one :class:`CheckpointError` line
instead of a crash, a hang or a huge allocation: the file and its pickle's
shape before unpickling (:mod:`vae_course.safe_load`,
:mod:`vae_course.checkpoint_schema`), then every field against the one set of
bounds the command line and the trainer use (:mod:`vae_course.checkpoint_checks`,
:mod:`vae_course.optimizer_checks`).

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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .bounds import shown
from .checkpoint_checks import (
    CheckpointError, check_core_fields, check_generator_state, check_model_state, check_rng_state,
    check_scaler_state, check_train_config, fail, is_finite_number, meta_model,
)
from .checkpoint_schema import (
    FORMAT_VERSION, REQUIRED_KEYS, TRAINING_KEYS, check_checkpoint_shape, check_fields, check_version,
)
from .hashing import state_checksum
from .models import build_model
from .optimizer_checks import check_optimizer_agrees, optimizer_state_for
from .rng import get_rng_state, set_rng_state
from .run_folder import atomic_write_bytes
from .safe_load import read_torch_file

__all__ = [
    "FORMAT_VERSION", "REQUIRED_KEYS", "TRAINING_KEYS", "CheckpointError", "save_checkpoint", "load_checkpoint",
    "migrate", "training_state", "restore_training_state", "model_from_checkpoint", "load_weights",
    "train_config_of", "history_of", "epoch_of", "model_name_of", "torch_version_of",
]

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
def _check_shape(state: Any, label: str) -> None:
    if not isinstance(state, dict):
        raise fail(label, f": expected a dict, found {type(state).__name__}")
    check_fields(state, label)


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
    check_version(state.get("format_version"), "checkpoint")
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

    Before ``torch.load`` (:func:`vae_course.safe_load.read_torch_file`): the
    file's zip directory, parsed from its own bytes (bounded record count and
    sizes, no compressed records, no bytes outside its records), and its pickle
    *scanned without being built* (bounded objects, references and nesting;
    only known fields; no field holding more tensor bytes than the model it
    describes needs), so no file can make the loader allocate or walk more than
    a real checkpoint of that model would. After it: every tensor dense and
    within the file's size, the format version, the fields' types and ranges
    (the bounds of :mod:`vae_course.bounds`, shared with the command line and
    the trainer), finite weights, and the SHA-256 checksum (compulsory). Older
    format versions are upgraded with :func:`migrate`.

    Raises :class:`CheckpointError` with one line saying what is wrong and what
    to do when the file is missing or unreadable, is not a checkpoint, is
    truncated, corrupted or crafted, contains pickled Python objects (refused,
    nothing is executed), or is for another model / latent size than expected.
    """
    path = Path(path)
    label = f"checkpoint {path}"
    state = read_torch_file(path, check_checkpoint_shape)
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
            raise fail(label, f": train_config says {key}={shown(saved[key])} but the checkpoint holds {shown(value)}; "
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
    check_optimizer_agrees(state, optimizer, label)
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
