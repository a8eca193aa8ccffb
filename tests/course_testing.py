"""Helpers shared by the unit tests (imported as ``from course_testing import ...``).

They live here rather than in ``conftest.py`` because ``tests/book/`` has its own
``conftest.py``: two modules named ``conftest`` cannot both be imported by name.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# A proxy on a closed local port: subprocesses that try to download fail fast.
OFFLINE_ENV = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": ""}


def data_available(name: str = "MNIST") -> bool:
    src = os.environ.get("VAE_COURSE_DATA")
    if src and (Path(src) / name / "raw").is_dir():
        return True
    cache = os.environ.get("VAE_COURSE_CACHE")
    return bool(cache) and (Path(cache) / "data" / name / "raw").is_dir()


needs_mnist = pytest.mark.skipif(not data_available("MNIST"), reason="MNIST files not found: set VAE_COURSE_DATA")
needs_fashion = pytest.mark.skipif(not data_available("FashionMNIST"),
                                   reason="Fashion-MNIST files not found: set VAE_COURSE_DATA")


# ---------------------------------------------------------------- CLI helpers
def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m vae_course`` subprocess: offline, this session's cache."""
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env.pop("VAE_COURSE_SMOKE", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 240, env: dict | None = None, cwd: str | os.PathLike | None = None):
    """Run the CLI in a fresh interpreter and return the ``CompletedProcess``."""
    return subprocess.run(
        [sys.executable, "-m", "vae_course", *args], capture_output=True, text=True,
        timeout=timeout, env=env or cli_env(), cwd=cwd or ROOT,
    )


def history_without_timings(history):
    """Per-epoch records without the wall-clock fields (which differ between runs)."""
    return [{k: v for k, v in h.items() if k not in ("seconds", "cpu_seconds", "images_per_second")} for h in history]
