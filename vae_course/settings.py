"""Where the course keeps things, and the one switch for quick "smoke" runs.

Three environment variables steer the whole package:

* ``VAE_COURSE_DATA``  — a folder holding the original MNIST / Fashion-MNIST
  ``*-ubyte.gz`` files (``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``).
  It may be read-only: the files are copied into the cache before use.
* ``VAE_COURSE_CACHE`` — the one folder the package writes to on its own
  (datasets, pretrained models, matplotlib's and TorchInductor's caches).
  Default: ``$XDG_CACHE_HOME/vae_course``, else ``~/.cache/vae_course``, else
  (no usable home folder, e.g. ``HOME=""``) ``<temp dir>/vae_course-<user id>``.
* ``VAE_COURSE_SMOKE`` — set to ``1`` to make every notebook train on a small
  subset for one or two epochs, so the whole course runs in minutes (CI uses it).

Importing this module points ``MPLCONFIGDIR`` and ``TORCHINDUCTOR_CACHE_DIR``
into the cache when they are unset, so matplotlib and ``torch.compile`` write
nowhere else (nothing is created until they need it).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OneLineError


class CacheDirError(OneLineError, OSError):
    """The cache folder cannot be created, written, or hold the data (one line, also in a notebook)."""


def smoke_mode() -> bool:
    """True when ``VAE_COURSE_SMOKE=1``: tiny runs that only check the code works."""
    return os.environ.get("VAE_COURSE_SMOKE", "0").strip().lower() in {"1", "true", "yes"}


def cache_path() -> Path:
    """The cache folder's path (see the module doc), without creating it."""
    root = os.environ.get("VAE_COURSE_CACHE", "").strip()
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "vae_course"
    home = os.environ.get("HOME", "").strip()
    if home and home != "/" and Path(home).is_absolute():  # HOME="" or "/" would give "/.cache"
        return Path(home) / ".cache" / "vae_course"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"vae_course-{uid}"


def cache_dir() -> Path:
    """The documented cache folder, created on first use.

    Raises :class:`CacheDirError` (one line: the folder, the reason, the fix)
    when it cannot be created or is not writable.
    """
    path = cache_path()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheDirError(f"cannot create the cache folder {path} ({err.strerror or err}); "
                            f"set VAE_COURSE_CACHE to a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheDirError(f"the cache folder {path} is not writable; set VAE_COURSE_CACHE to a writable folder")
    return path


def data_source_dir() -> Path | None:
    """The folder named by ``VAE_COURSE_DATA``, or ``None`` when it is unset."""
    root = os.environ.get("VAE_COURSE_DATA")
    return Path(root).expanduser() if root else None


def point_tool_caches_into_cache() -> None:
    """Set ``MPLCONFIGDIR`` and ``TORCHINDUCTOR_CACHE_DIR`` under the cache folder if unset.

    Only when the cache folder can be written: otherwise the tools keep their own
    defaults, and :func:`cache_dir` reports the problem when the cache is needed.
    """
    base = cache_path()
    for variable, sub in (("MPLCONFIGDIR", "matplotlib"), ("TORCHINDUCTOR_CACHE_DIR", "torchinductor")):
        if os.environ.get(variable):
            continue
        try:
            (base / sub).mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(base / sub, os.W_OK):
            os.environ[variable] = str(base / sub)


point_tool_caches_into_cache()
