"""The explorers (notebooks 4 and 7) work under Colab's ipywidgets 7.7.1 and under 8.

ipywidgets 8 is the venv's own. 7.7.1 (Colab's, constraints/colab-2026-08.txt)
is installed once with ``pip install --target _build/ipywidgets-7.7.1`` (needs
the package registry; cached for later runs) and put first on ``PYTHONPATH`` of
a fresh interpreter, so the venv itself is never changed. Each run builds both
explorers and moves their controls (tests/widget_driver.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_testing import ROOT

DRIVER = ROOT / "tests" / "widget_driver.py"
COLAB_IPYWIDGETS = "7.7.1"
TARGET = ROOT / "_build" / f"ipywidgets-{COLAB_IPYWIDGETS}"


def _run_driver(major: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    paths = ([str(extra_path)] if extra_path else []) + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, str(DRIVER), major], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def _colab_ipywidgets() -> Path:
    """ipywidgets 7.7.1 (and ipython_genutils, which it imports) in a folder of its own."""
    if not (TARGET / "ipywidgets-7.7.1.dist-info").is_dir():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--target", str(TARGET), f"ipywidgets=={COLAB_IPYWIDGETS}", "ipython_genutils==0.2.0"],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"could not fetch ipywidgets {COLAB_IPYWIDGETS} from the registry:\n{proc.stderr}"
    return TARGET


def test_explorers_work_under_ipywidgets_8():
    proc = _run_driver("8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("OK 8.")


def test_explorers_work_under_colabs_ipywidgets_7_7_1():
    proc = _run_driver("7", _colab_ipywidgets())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"OK {COLAB_IPYWIDGETS}"


def test_the_driver_notices_the_wrong_version():
    """The version guard is real: asking for 7 in the venv (which has 8) fails."""
    proc = _run_driver("7")
    assert proc.returncode == 2 and "expected ipywidgets 7.x" in proc.stdout
