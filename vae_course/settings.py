"""Where the course keeps things, and the one switch for quick "smoke" runs.

Three environment variables steer the whole package:

* ``VAE_COURSE_DATA``  — a folder holding the original MNIST / Fashion-MNIST
  ``*-ubyte.gz`` files (``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``).
  It may be read-only: the files are copied into the cache before use.
* ``VAE_COURSE_CACHE`` — the one folder the package writes to on its own
  (datasets, pretrained models). Default: ``~/.cache/vae_course``.
* ``VAE_COURSE_SMOKE`` — set to ``1`` to make every notebook train on a small
  subset for one or two epochs, so the whole course runs in minutes (CI uses it).
"""
from __future__ import annotations

import os
from pathlib import Path


def smoke_mode() -> bool:
    """True when ``VAE_COURSE_SMOKE=1``: tiny runs that only check the code works."""
    return os.environ.get("VAE_COURSE_SMOKE", "0").strip().lower() in {"1", "true", "yes"}


def cache_dir() -> Path:
    """The documented cache folder (created on first use)."""
    root = os.environ.get("VAE_COURSE_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "vae_course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_source_dir() -> Path | None:
    """The folder named by ``VAE_COURSE_DATA``, or ``None`` when it is unset."""
    root = os.environ.get("VAE_COURSE_DATA")
    return Path(root).expanduser() if root else None
