"""Every setting of a training run, in one place: :class:`TrainConfig`.

Each field says, in its metadata, whether it may change when a run is resumed
(``on_resume``) and whether it shapes the trained weights (``affects_weights``,
which decides the pretrained models' cache keys). :func:`resumed_config` is the one
resume policy, enforced by :meth:`vae_course.train.Trainer.resume` for every caller
(the CLI, notebooks, ``pretrained``). :func:`default_config` applies the tuned recipe
of :data:`RECOMMENDED_SETTINGS` where a model has one: the CLI, ``train_model`` and
``pretrained`` all use it, so "the defaults" mean the same everywhere.
"""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from .bounds import check_model_size, problem
from .schedules import LR_SCHEDULES

# ---------------------------------------------------------------- settings
# What may change when a run is resumed is declared on each TrainConfig field
# (metadata "on_resume"); Trainer.resume enforces it for every caller.
RESUME_FIXED = "fixed"  # must equal the checkpoint's value (the default)
RESUME_FREE = "free"  # may change: it does not alter what was trained so far
RESUME_IF_CONSTANT_LR = "if constant lr"  # may change only when lr_schedule is "constant"


def _setting(default: Any, *, on_resume: str = RESUME_FIXED, affects_weights: bool = True) -> Any:
    """A TrainConfig field with its resume policy and whether it changes the trained weights
    (``pretrained`` leaves settings that do not out of its cache key)."""
    return field(default=default, metadata={"on_resume": on_resume, "affects_weights": affects_weights})


def on_resume(f: Field) -> str:
    """The resume policy of a :class:`TrainConfig` field (``RESUME_FIXED`` unless declared)."""
    return f.metadata.get("on_resume", RESUME_FIXED)


def affects_weights(f: Field) -> bool:
    """False for settings that cannot change the trained weights (device, log interval)."""
    return f.metadata.get("affects_weights", True)


def flag_name(name: str) -> str:
    """The CLI flag of a setting: ``lr_schedule`` -> ``--lr-schedule``."""
    return "--" + name.replace("_", "-")


# The numeric settings, each checked against vae_course.bounds.BOUNDS (None: unset).
_BOUNDED = ("epochs", "batch_size", "latent_dim", "hidden_dim", "lr", "beta", "kl_warmup_epochs", "free_bits",
            "seed", "limit_train", "limit_test", "val_size", "log_every", "schedule_epochs")
_OPTIONAL = ("hidden_dim", "limit_train", "limit_test", "schedule_epochs")
# The settings every saved train_config holds (format version 1 on); the others have defaults.
SAVED_SETTINGS = ("model", "dataset", "binarize", "epochs", "batch_size", "latent_dim", "lr", "seed")


@dataclass
class TrainConfig:
    """Every setting of a training run (the CLI flags map one-to-one onto these)."""

    model: str = "vae"
    dataset: str = "mnist"
    binarize: str = "none"
    epochs: int = _setting(10, on_resume=RESUME_FREE)  # the total, also when resuming
    batch_size: int = 128
    latent_dim: int = 20
    hidden_dim: int | None = None  # None: the model's default (400 for the MLPs)
    # A new rate on resume continues a constant-rate run at that rate (a "step decay");
    # a cosine schedule sets the rate itself at every step.
    lr: float = _setting(1e-3, on_resume=RESUME_IF_CONSTANT_LR)
    beta: float = 1.0
    kl_warmup_epochs: float = 0.0  # KL annealing: beta ramps 0 -> beta over this many epochs
    free_bits: float = 0.0  # nats per latent dimension (batch-average KL clamped below at this)
    seed: int = 1
    device: str = _setting("auto", on_resume=RESUME_FREE, affects_weights=False)
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int = 0
    # Watch only the validation split during training (needs val_size > 0): every
    # decision (stopping, schedule) is then made without the test set, which is read
    # once, by `evaluate`, at the end. Never changes the weights (evaluation has its own
    # noise), and fixed on resume: a run that looked at the test set cannot unlook.
    keep_test_unseen: bool = _setting(False, affects_weights=False)
    amp: bool = False  # mixed precision (only used on CUDA)
    compile: bool = False
    log_every: int = _setting(50, on_resume=RESUME_FREE, affects_weights=False)
    # How the learning rate moves during training: "constant" (the canonical
    # example) or "cosine" (lr * (1 + cos(pi * t)) / 2, from lr at the start to 0
    # at the end of the run, t = fraction of all steps done).
    lr_schedule: str = "constant"
    # The length of that schedule in epochs (None: the run's `epochs`). Fix it at the
    # start when a run will be trained in several --resume steps, so that the rate
    # follows one schedule and resuming gives exactly the one-go result.
    schedule_epochs: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting (before any data is loaded)."""
        from .data import BINARIZE_MODES, DATASETS
        from .device import DEVICE_CHOICES
        from .models import MODELS

        for name, known in (("model", MODELS), ("dataset", DATASETS), ("binarize", BINARIZE_MODES)):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in known:
                raise ValueError(f"{name}: unknown choice {getattr(self, name)!r}; choose one of {sorted(known)}")
        device = self.device
        if not isinstance(device, str) or (device.lower() not in DEVICE_CHOICES
                                           and not device.lower().startswith("cuda:")):
            raise ValueError(f"device: unknown choice {device!r}; choose one of {DEVICE_CHOICES}")
        for name in ("amp", "compile", "keep_test_unseen"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be True or False, got {getattr(self, name)!r}")
        # Every number within the one set of bounds the CLI and the checkpoint loader use too,
        # so that what trains is what loads (vae_course.bounds).
        for name in _BOUNDED:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            message = problem(name, value)
            if message:
                raise ValueError(message)
        if self.keep_test_unseen and not self.val_size:
            raise ValueError("keep_test_unseen: training then watches the validation split only, and there is none; "
                             "add --val-size N (e.g. 10000) to hold out the last N training images")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: unknown choice {self.lr_schedule!r}; choose one of {LR_SCHEDULES}")
        check_model_size(self.model, self.model_kwargs())  # the parameter cap: sizes together

    def model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"latent_dim": self.latent_dim}
        if self.hidden_dim is not None:
            kwargs["hidden_dim"] = self.hidden_dim
        return kwargs



# The settings recommended for a model, on top of TrainConfig's defaults (which
# stay the canonical PyTorch example's: constant lr 1e-3, batch 128). For the
# seed's MLP they were chosen on a validation split (10 epochs, the last 10,000
# training images held out) and confirmed on the test set with 3 seeds: see
# results/quality_mlp_defaults.json and the "Results and benchmarks" page.
RECOMMENDED_SETTINGS: dict[str, dict[str, Any]] = {
    "vae": {"lr": 5e-3, "lr_schedule": "cosine", "batch_size": 128},
}


def recommended_settings(model: str) -> dict[str, Any]:
    """The tuned training settings for ``model`` beyond :class:`TrainConfig`'s.

    Returns a fresh dict of :class:`TrainConfig` field names to values (empty for
    models without a tuned recipe). For ``"vae"``: a cosine schedule from a peak
    learning rate of 5e-3 (dimensionless step size of Adam) at batch 128, which
    after 10 epochs beats the canonical constant 1e-3 by about 1.5 nats per
    example on the validation split.
    """
    if not isinstance(model, str):
        raise TypeError(f"model: expected a model name, got {type(model).__name__}")
    return dict(RECOMMENDED_SETTINGS.get(model, {}))


def default_config(config_class: type[TrainConfig] = TrainConfig, **settings: Any) -> TrainConfig:
    """The one set of defaults, used by the CLI, :func:`train_model` and ``pretrained``.

    :class:`TrainConfig`'s defaults, then the model's tuned recipe
    (:func:`recommended_settings`), then ``settings``. The recipe applies only as a
    bundle: if any of its settings is given (e.g. ``lr``), none of it does, so
    ``lr=1e-3, lr_schedule="constant"`` is exactly the canonical PyTorch example.
    """
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: not a training setting; known: {sorted(known)}")
    recipe = recommended_settings(settings.get("model", config_class().model))
    if any(key in settings for key in recipe):
        recipe = {}
    return config_class(**{**recipe, **settings})




def resumed_config(saved: TrainConfig, settings: dict[str, Any], done_epochs: int = 0) -> TrainConfig:
    """``saved`` with ``settings`` applied, as the fields' resume policy allows.

    Raises ``ValueError`` naming every setting that contradicts the checkpoint
    (flag, given value, saved value), or an ``epochs`` below ``done_epochs``.
    """
    by_name = {f.name: f for f in fields(saved)}
    changes, conflicts = {}, []
    for name, value in settings.items():
        if name not in by_name:
            raise ValueError(f"{name}: not a training setting; known: {sorted(by_name)}")
        old = getattr(saved, name)
        if value is None or value == old:
            continue
        policy = on_resume(by_name[name])
        if policy == RESUME_FREE or (policy == RESUME_IF_CONSTANT_LR and saved.lr_schedule == "constant"):
            changes[name] = value
        elif policy == RESUME_IF_CONSTANT_LR:
            conflicts.append(f"{flag_name(name)} {value} (checkpoint has {old}), which only a run with the "
                             f"constant schedule may change: its {saved.lr_schedule} schedule sets the rate")
        else:
            conflicts.append(f"{flag_name(name)} {value} (checkpoint has {old})")
    if conflicts:
        raise ValueError("--resume: these settings contradict the checkpoint: " + "; ".join(conflicts)
                         + ". Drop them, or train into a new --out folder.")
    config = replace(saved, **changes)
    config.validate()
    if config.epochs < done_epochs:
        raise ValueError(f"--epochs {config.epochs}: the checkpoint already has {done_epochs} epochs")
    return config

