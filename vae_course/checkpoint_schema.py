"""What a checkpoint may hold: its fields, its format versions, and how many tensor
bytes each field may carry, checked on the file's *scanned* pickle
(:func:`vae_course.safe_pickle.scan`) before anything is unpickled.

A field this version does not know is refused (a newer format has a newer
version number, refused with "upgrade"), and so is a field whose tensors are
larger than the model the checkpoint describes needs: the model is built on the
``meta`` device (no memory) from the file's own ``model_config``, and its size
bounds the weights and the optimizer state. So no file, however it was crafted,
makes the loader allocate more than a real checkpoint of that model would.
"""
from __future__ import annotations

from typing import Any

from .bounds import MAX_EPOCHS, shown
from .checkpoint_checks import fail, is_int, meta_model
from .safe_pickle import Node, PickleShape, Unread, entries, materialize

FORMAT_VERSION = 2
OLDEST_VERSION = 1
REQUIRED_KEYS = ("format_version", "model_name", "model_config", "model_state", "epoch", "history")
# What restore_training_state needs beyond REQUIRED_KEYS ("scaler_state" and
# "lr_schedule" are optional: absent in checkpoints from before they existed).
TRAINING_KEYS = REQUIRED_KEYS + ("optimizer_state", "train_config", "rng", "data_generator", "noise_generator")
OPTIONAL_KEYS = ("checksum", "scaler_state", "lr_schedule", "dataset", "binarize", "interrupted",
                 "vae_course_version", "torch_version")
FIELDS = TRAINING_KEYS + OPTIONAL_KEYS
# Tensor bytes a field may hold beyond what the model fixes: random-number states
# (the CPU generator's 5 kB, NumPy's 5 kB, 16 bytes per GPU).
SMALL_TENSORS = {"rng": 1 << 20, "data_generator": 1 << 16, "noise_generator": 1 << 16}


def check_version(version: Any, label: str) -> None:
    """``version`` must be one this vae_course reads (:data:`OLDEST_VERSION` to :data:`FORMAT_VERSION`)."""
    if not is_int(version) or version < OLDEST_VERSION:
        raise fail(label, f"has format version {shown(version)}, which no vae_course wrote; it is damaged or "
                          f"not a vae_course checkpoint")
    if version > FORMAT_VERSION:
        raise fail(label, f"has format version {version}, newer than this vae_course reads ({OLDEST_VERSION} "
                          f"to {FORMAT_VERSION}): upgrade vae_course (pip install -U vae-course) to load it")


def check_fields(state: dict, label: str) -> None:
    """The dict's keys: every required one present, the version readable, none unknown."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise fail(label, f"is not a vae_course checkpoint: missing {missing}")
    check_version(state["format_version"], label)
    unknown = [k for k in state if k not in FIELDS]
    if unknown:
        raise fail(label, f"holds a field this vae_course does not know ({str(unknown[0])[:40]!r}); it is damaged "
                          f"or was not written by vae_course, and was not loaded")


def model_bytes(model: Any) -> tuple[int, int]:
    """``(bytes, tensors)`` of a model's state dict (a ``meta`` model allocates nothing)."""
    state = model.state_dict()
    return sum(t.numel() * t.element_size() for t in state.values()), len(state)


def check_checkpoint_shape(shape: PickleShape) -> None:
    """The :data:`vae_course.safe_load.Schema` of a checkpoint: a dict of known fields,
    a buildable model within the size bounds, a history of at most ``MAX_EPOCHS``
    records, and no field holding more tensor bytes than that model needs.
    Raises a ``ValueError`` whose message completes "checkpoint <path>"."""
    fields = entries(shape.root)
    if fields is None:
        kind = shape.root.kind if isinstance(shape.root, Node) else type(shape.root).__name__
        if kind == "dict":
            raise ValueError("holds more fields than a checkpoint has; it is damaged or was not written by "
                             "vae_course, and was not loaded")
        raise ValueError(f": expected a dict, found {kind}")
    small = {k: materialize(v) for k, v in fields.items() if not isinstance(v, Node) or v.kind != "tensor"}
    check_fields({**fields, **small}, "")
    config = small["model_config"]
    if isinstance(config, Unread):
        raise ValueError(": model_config should be a small dict of model sizes")
    weights, tensors = model_bytes(meta_model(small["model_name"], config, ""))
    budgets = {"model_state": weights, "optimizer_state": 3 * weights + 1024 * tensors + (1 << 16),
               **SMALL_TENSORS}
    for key, value in fields.items():
        held, allowed = (value.tensor_bytes if isinstance(value, Node) else 0), budgets.get(key, 0)
        if held > allowed and not allowed:
            raise ValueError(f": {key} holds a tensor, which that field never does; it is damaged or crafted, and "
                             f"was not loaded")
        if held > allowed:
            raise ValueError(f": {key} holds {held:,} bytes of tensors, more than the {small['model_name']!r} model "
                             f"it describes needs ({allowed:,}); it is damaged or crafted, and was not loaded")
    history = fields["history"]
    if isinstance(history, Node) and history.kind == "list" and history.length > MAX_EPOCHS:
        raise ValueError(f": history has {history.length:,} records, more than the {MAX_EPOCHS:,} epochs a run may "
                         f"have; it is damaged or crafted, and was not loaded")
