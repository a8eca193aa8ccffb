"""Installing the course in Colab changes none of Colab's own packages.

Colab's runtime is committed as constraints/colab-2026-08.txt (source and date
in its header). The test makes a Colab *profile*: a scratch venv (cached under
_build/colab-pip) holding Colab's pip (24.1.2) and, for every other package of
that list, an installed-package record (``NAME-VERSION.dist-info/METADATA``, no
files) — so pip sees exactly Colab's versions as installed, as in a fresh Colab
kernel. Colab's setup cell runs ``pip install <the course>``; here pip resolves
the package's wheel with ``--dry-run --report`` for Colab's interpreter
(``--python-version 3.13 --implementation cp --platform manylinux_2_28_x86_64
--only-binary=:all:``; this machine runs another Python). Nothing is installed
and, when nothing would change, nothing is downloaded: pip reads the wheel's
requirements and finds them satisfied. The report must not upgrade or downgrade
torch, torchvision, numpy, matplotlib, ipywidgets or tqdm, and the same install
with the list as constraints (``-c``) must resolve. Needs the package registry
only to create the profile (once) and when a requirement is not satisfied.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_testing import ROOT
from wheel_build import build_wheel

COLAB = ROOT / "constraints" / "colab-2026-08.txt"
WATCHED = ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm")
COLAB_TARGET = ["--python-version", "3.13", "--implementation", "cp",
                "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:"]
PIP_VENV = ROOT / "_build" / "colab-pip"
TIMEOUT = 600


def colab_versions() -> dict[str, str]:
    pins = {}
    for line in COLAB.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_key(name)] = version
    return pins


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def colab_pip() -> Path:
    """The Python of a venv where pip sees Colab's packages as installed (made once)."""
    pins = colab_versions()
    python = PIP_VENV / "bin" / "python"
    stamp = PIP_VENV / "colab-profile.txt"
    if not (stamp.is_file() and stamp.read_text() == COLAB.read_text()):
        shutil.rmtree(PIP_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(PIP_VENV)], check=True, timeout=TIMEOUT)
        proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"pip=={pins['pip']}"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, f"could not install pip {pins['pip']} from the registry:\n{proc.stderr}"
        site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        present = {_key(p.name.split("-")[0]) for p in site.glob("*.dist-info")}
        for name, version in pins.items():
            if name not in present:  # a record pip reads as "installed", with no files behind it
                record = site / f"{name.replace('-', '_')}-{version}.dist-info"
                record.mkdir()
                (record / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
                (record / "INSTALLER").write_text("colab-profile\n")
                (record / "RECORD").write_text("")
        stamp.write_text(COLAB.read_text())
    return python


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package's wheel, built from a copy of the sources (the checkout stays clean)."""
    return build_wheel(tmp_path_factory.mktemp("build"))


def resolve(pip_python: Path, requirement: str, report: Path, *constraints: str) -> subprocess.CompletedProcess:
    """``pip install --dry-run`` of one requirement in the Colab profile, for Colab's interpreter."""
    return subprocess.run(
        [str(pip_python), "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
         "--report", str(report), *COLAB_TARGET, *constraints, requirement],
        capture_output=True, text=True, timeout=TIMEOUT)


def would_install(report: Path) -> dict[str, str]:
    return {_key(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


def test_the_constraints_hold_colabs_headline_versions():
    pins = colab_versions()
    assert {name: pins[name] for name in WATCHED} == {
        "torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.3", "matplotlib": "3.10.0",
        "ipywidgets": "7.7.1", "tqdm": "4.67.3"}
    assert "Source:" in COLAB.read_text() and "2026-08" in COLAB.read_text()
    assert not any("+" in version for version in pins.values()), "local version parts must be stripped"


def test_installing_the_course_keeps_colabs_packages(colab_pip: Path, wheel: Path, tmp_path: Path):
    report = tmp_path / "report.json"
    proc = resolve(colab_pip, str(wheel), report)
    assert proc.returncode == 0, f"pip could not install {wheel.name} in the Colab profile:\n{proc.stderr[-3000:]}"
    installed, pins = would_install(report), colab_versions()
    assert "vae-course" in installed
    changed = {name: f"{pins[name]} -> {installed[name]}" for name in WATCHED if name in installed}
    assert not changed, f"installing the course in Colab would replace Colab's {changed}"
    proc = resolve(colab_pip, str(wheel), tmp_path / "constrained.json", "-c", str(COLAB))
    assert proc.returncode == 0, f"{wheel.name} does not resolve within {COLAB.name}:\n{proc.stderr[-3000:]}"


def test_the_setup_cell_runs_a_plain_pip_install_of_the_course():
    """What the resolution above models is what the generated cell runs: ``pip install -q <the course>``,
    with no flag that could replace Colab's packages (``-U``, ``--force-reinstall``, ...)."""
    import ast

    sys.path.insert(0, str(ROOT / "scripts"))
    import nbtools

    tree = ast.parse(nbtools.setup_source())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and ast.unparse(node.func) == "subprocess.run"]
    assert len(calls) == 1, "the setup cell runs pip once"
    command = calls[0].args[0]
    assert ast.unparse(command.elts[0]) == "sys.executable", "pip of the kernel's own Python"
    assert [ast.literal_eval(e) for e in command.elts[1:]] == ["-m", "pip", "install", "-q",
                                                               nbtools.package_requirement()]


def test_a_requirement_that_would_replace_colabs_ipywidgets_is_caught(colab_pip: Path, tmp_path: Path):
    """The check can fail: the old floor ``ipywidgets>=8.0`` would upgrade Colab's 7.7.1."""
    report = tmp_path / "report.json"
    proc = resolve(colab_pip, "ipywidgets>=8.0", report)
    assert proc.returncode == 0, proc.stderr
    assert would_install(report)["ipywidgets"].startswith("8.")
    assert resolve(colab_pip, "ipywidgets>=8.0", tmp_path / "c.json", "-c", str(COLAB)).returncode != 0
