"""The set-up tooling: Colab's list turned into constraints, and the no-skip gate
that keeps `make test` from passing with its browser tests skipped."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_testing import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import colab_constraints  # noqa: E402

FREEZE = ROOT.parent / "shared" / "colab" / "pip-freeze.cpu.txt"


@pytest.mark.parametrize("line, want", [
    ("numpy==2.1.3", "numpy==2.1.3"),
    ("torch==2.11.0+cu128", "torch==2.11.0"),
    ("torch @ https://example.org/whl/cpu/torch-2.11.0%2Bcpu-cp313-cp313-manylinux_2_28_x86_64.whl", "torch==2.11.0"),
    ("en_core_web_sm @ https://example.org/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl"
     "#sha256=19", "en_core_web_sm==3.8.0"),
])
def test_freeze_lines_become_public_pins(line, want):
    assert colab_constraints.constraint_line(line) == (want, None)


@pytest.mark.parametrize("line", ["google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz",
                                  "kernel_gateway @ git+https://example.org/kernel_gateway@b134e99"])
def test_lines_without_a_public_version_are_dropped_with_a_reason(line):
    constraint, reason = colab_constraints.constraint_line(line)
    assert constraint is None and line.split(" @ ")[0] in reason


@pytest.mark.skipif(not FREEZE.is_file(), reason="Colab's pip-freeze list is not beside the checkout")
def test_the_committed_constraints_are_the_generators_output():
    committed = (ROOT / "constraints" / "colab-2026-08.txt").read_text()
    source = committed.splitlines()[1].removeprefix("# Source: ").removesuffix(".")
    assert colab_constraints.convert(FREEZE.read_text(), source) == committed


def _no_skips(tmp_path: Path, skipped: bool, allow: bool) -> subprocess.CompletedProcess:
    case = '<testcase classname="tests.book.test_browser" name="test_page[intro]">' + (
        '<skipped message="Chromium not found"/>' if skipped else "") + "</testcase>"
    xml = tmp_path / "book.xml"
    xml.write_text(f"<testsuites><testsuite>{case}</testsuite></testsuites>")
    env = {k: v for k, v in os.environ.items() if k != "ALLOW_SKIP_BROWSER"}
    if allow:
        env["ALLOW_SKIP_BROWSER"] = "1"
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "no_skips.py"), str(xml)],
                          capture_output=True, text=True, env=env)


def test_a_skipped_browser_test_fails_make_test_unless_allowed(tmp_path):
    failed = _no_skips(tmp_path, skipped=True, allow=False)
    assert failed.returncode == 1 and "Chromium not found" in failed.stdout and "ALLOW_SKIP_BROWSER" in failed.stdout
    assert _no_skips(tmp_path, skipped=True, allow=True).returncode == 0
    assert _no_skips(tmp_path, skipped=False, allow=False).returncode == 0
