"""Instant checks for the exercises, one module per notebook.

Pass your function to the matching check, e.g. ``check_kl(my_kl)``. The check
runs it on several inputs, compares values, shapes and (where it matters)
gradients with the package's reference, and prints a verdict:

* ``✅`` — correct;
* ``❌`` — wrong, with a hint naming the usual mistake when it recognises one
  (a sign error, a mean instead of a sum, the variance used as a log-variance,
  a missing ½ ...);
* ``⏳ not attempted yet`` — your function still returns ``None``. This never
  raises, so a notebook still runs from top to bottom.

Each check returns ``True`` / ``False`` / ``None`` (not attempted), so tests can
use them too.

Where things live: :mod:`.engine` (``run_check``, ``Variant``: comparing and
recognising mistakes), :mod:`.cases` (inputs shared by several notebooks),
``nb01`` ... ``nb09`` (the checks of each notebook), :mod:`.train_step`
(notebook 5's capstone) and :mod:`.explore` (``reveal``: a self-assessment for
open exercises, the expected observation folded). Everything public is re-exported here, so
``from vae_course.checks import check_kl`` and ``checks.check_kl(...)`` both work.
"""
from __future__ import annotations

from .engine import Variant, run_check
from .nb01 import check_encoder_forward, check_squared_error
from .nb02 import check_gaussian_log_density, check_toy_elbo
from .nb03 import check_reparameterize, check_score_function
from .nb04 import check_gaussian_kl, check_kl, check_vae_loss
from .nb05 import check_bernoulli_entropy, check_bernoulli_nll, check_gaussian_nll
from .nb06 import check_conv_output_size, check_iwae, check_iwae_curve
from .nb07 import check_aggregate_posterior, check_slerp
from .nb08 import check_active_units, check_free_bits
from .nb09 import check_auroc, check_bits_per_dim
from .explore import reveal
from .train_step import check_train_step

# Attributes the single-module ``checks.py`` had only because it imported them; kept so
# that nothing importing them from here breaks. Not part of the API (see ``__all__``).
import math  # noqa: E402,F401
from dataclasses import dataclass  # noqa: E402,F401
from typing import Any, Callable, Sequence  # noqa: E402,F401

import torch  # noqa: E402,F401
from torch import Tensor  # noqa: E402,F401

from .. import losses  # noqa: E402,F401

__all__ = [
    "Variant", "run_check",
    "check_squared_error", "check_encoder_forward",                   # notebook 1
    "check_gaussian_log_density", "check_toy_elbo",                   # notebook 2
    "check_reparameterize", "check_score_function",                   # notebook 3
    "check_kl", "check_gaussian_kl", "check_vae_loss",                # notebook 4
    "check_gaussian_nll", "check_bernoulli_nll", "check_bernoulli_entropy",  # notebook 5
    "check_train_step",                                               # notebook 5's capstone
    "check_conv_output_size", "check_iwae", "check_iwae_curve",       # notebook 6
    "check_slerp", "check_aggregate_posterior",                       # notebook 7
    "check_active_units", "check_free_bits",                          # notebook 8
    "check_auroc", "check_bits_per_dim",                              # notebook 9
    "reveal",                                                         # explore exercises
]
