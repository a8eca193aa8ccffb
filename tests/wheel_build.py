"""Build the package's wheel the way a user's ``pip install`` would, without
touching the checkout (shared by the Colab-profile and notebook-alone tests)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE")


def build_wheel(workdir: Path, timeout: float = 600) -> Path:
    """The wheel of this checkout, built from a copy of its sources in ``workdir``."""
    src, out = workdir / "src", workdir / "wheel"
    src.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "vae_course", src / "vae_course", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    try:
        import setuptools  # noqa: F401  (the venv's own: no registry needed)
        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation,
                           str(src), "-w", str(out)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"building the wheel failed:\n{proc.stderr}")
    (wheel,) = out.glob("vae_course-*.whl")
    return wheel


def install_wheel(wheel: Path, target: Path, timeout: float = 600) -> Path:
    """Install the wheel alone (no dependencies, no registry) into ``target``; return it."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"installing the wheel failed:\n{proc.stderr}")
    return target
