"""The one set of bounds on every number a run is given: flags, settings, files.

The command line (argparse types in :mod:`vae_course.arguments`), the trainer
(:meth:`vae_course.config.TrainConfig.validate`) and the checkpoint loader
(:mod:`vae_course.checkpoint_checks`) all read their limits from here, so a
value one of them accepts is never refused by another: a run that trains
writes a checkpoint that loads.

The limits are far beyond anything the course trains (its largest model has
about 1.3 million parameters; its longest run is 158 epochs) and small enough
that no value can make the package allocate gigabytes or overflow a C integer
(``--seed 2**64``, ``--latent-dim 10**9``).
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any

# The most parameters a model may have: 200 MB of float32 weights (Adam triples it).
MAX_MODEL_PARAMETERS = 50_000_000
# MNIST and Fashion-MNIST both have 10 classes: what a conditional model conditions on.
DATASET_CLASSES = 10


@dataclass(frozen=True)
class Bound:
    """The allowed range of one number: ``low <= value <= high`` (``low`` excluded when
    ``open_low``), a whole number when ``integer``; ``why`` says what the range protects."""

    low: float
    high: float
    integer: bool = True
    open_low: bool = False
    why: str = ""

    def reason(self) -> str:
        """`` (why)`` for a message, or nothing."""
        return f" ({self.why})" if self.why else ""

    def describe(self) -> str:
        """The range in words, e.g. ``"an integer from 1 to 4096"``."""
        if self.integer:
            return f"an integer from {self.low} to {self.high}"
        if math.isinf(self.high):
            return "a positive finite number" if self.open_low else f"a finite number >= {self.low:g}"
        return f"a number from {self.low:g} to {self.high:g}"

    def accepts(self, value: Any) -> bool:
        """True when ``value`` is a number of the right kind inside the range (never raises)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer:
            return isinstance(value, int) and self.low <= value <= self.high
        if isinstance(value, int) and abs(value) > 2**63:  # a float() of it would overflow
            return False
        number = float(value)
        above = number > self.low if self.open_low else number >= self.low
        return math.isfinite(number) and above and number <= self.high


# name -> Bound: training settings (TrainConfig fields), model sizes, evaluation flags.
BOUNDS: dict[str, Bound] = {
    # model sizes: each also passes the parameter cap, checked on the whole model
    "latent_dim": Bound(1, 4096),
    "hidden_dim": Bound(1, 65_536),
    "channels": Bound(1, 1024),
    "num_classes": Bound(2, 10_000, why="a conditional model needs at least 2 classes to condition on"),
    # training
    "epochs": Bound(1, 10_000),
    "schedule_epochs": Bound(1, 10_000),
    "batch_size": Bound(1, 1_000_000),
    "seed": Bound(0, 2**32 - 1, why="the seeds NumPy accepts"),
    "limit_train": Bound(1, 10_000_000),
    "limit_test": Bound(1, 10_000_000),
    "val_size": Bound(0, 10_000_000),
    "log_every": Bound(1, 1_000_000_000),
    "lr": Bound(0, math.inf, integer=False, open_low=True),
    "beta": Bound(0, math.inf, integer=False),
    "kl_warmup_epochs": Bound(0, 10_000, integer=False),
    "free_bits": Bound(0, math.inf, integer=False),
    "threads": Bound(1, 1024, why="torch threads on the CPU"),
    # evaluation
    "iw_samples": Bound(0, 1_000_000, why="papers use 5,000"),
    "sample_test": Bound(1, 10_000_000),
}
# The sizes a checkpoint's model_config may hold (TrainConfig has no channels / num_classes).
MODEL_SIZES = ("latent_dim", "hidden_dim", "channels", "num_classes")
MAX_EPOCHS = int(BOUNDS["epochs"].high)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 2


def shown(value: Any) -> str:
    """``value`` for a one-line message, in bounded time and length: an integer of 400
    digits by its length (``str`` of one over 4,300 digits raises), a container by its
    first items."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return f"an integer of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    try:
        return _SHORT.repr(value)[:60]
    except Exception:  # noqa: BLE001 - a huge integer inside a container, an odd __repr__
        return f"a {type(value).__name__}"


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not allowed for ``name`` (``"latent_dim: must be ..."``), or ``None``.

    Never raises, whatever ``value`` is (an integer of 400 digits included).
    """
    bound = BOUNDS[name]
    if bound.accepts(value):
        return None
    return f"{name}: must be {bound.describe()}{bound.reason()}, got {shown(value)}"


def check(name: str, value: Any) -> None:
    """Raise ``ValueError`` with :func:`problem`'s sentence when ``value`` is out of bounds."""
    message = problem(name, value)
    if message:
        raise ValueError(message)


def check_model_size(name: str, config: dict[str, Any]) -> Any:
    """The model ``name(**config)`` built on the ``meta`` device (no memory), after
    checking every size against :data:`BOUNDS` and the parameter count against
    :data:`MAX_MODEL_PARAMETERS`. Raises ``ValueError`` with one sentence."""
    import torch

    from .models import MODELS, build_model

    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"model: {name!r:.60} is not one of {sorted(MODELS)}")
    if not isinstance(config, dict):
        raise ValueError(f"model_config should be a dict, found {type(config).__name__}")
    for key, value in config.items():
        if key not in MODEL_SIZES:
            raise ValueError(f"unknown setting {key!r:.60}")
        bound = BOUNDS[key]
        if not bound.accepts(value):
            raise ValueError(f"model_config {key} should be {bound.describe()}{bound.reason()}, found {shown(value)}")
    with torch.device("meta"):
        model = build_model(name, **config)
    n = sum(p.numel() for p in model.parameters())
    if n > MAX_MODEL_PARAMETERS:
        sizes = ", ".join(f"{k}={v}" for k, v in config.items())
        raise ValueError(f"a {name!r} with {sizes} has {n:,} parameters, over this vae_course's limit of "
                         f"{MAX_MODEL_PARAMETERS:,} ({MAX_MODEL_PARAMETERS * 4 // 10**6} MB of weights); "
                         f"choose smaller sizes")
    return model
