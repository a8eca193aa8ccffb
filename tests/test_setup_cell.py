"""The Colab setup cell (scripts/nbtools.py setup_source), run for real in a Jupyter kernel.

The kernel is told it is Colab the way the cell checks (a ``google.colab``
module in ``sys.modules``); pip runs for real:

* an install that cannot work (a repository at a closed local port) stops
  "Run all": the cell shows one line (what failed, what to do) instead of a
  traceback, and the next queued cell is aborted, as JupyterLab's and Colab's
  "Run all" queue them;
* an install that works (a small local wheel, into a temporary ``PIP_TARGET`` so
  this environment is not touched) prints no restart advice, and the next cell
  imports what it installed, without a restart;
* outside Colab the cell does nothing.

Colab's own packages are guarded by tests/test_colab_profile.py.
"""
from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

from course_testing import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402

FAKE_COLAB = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')"
NEXT_CELL = "print('NEXT CELL RAN')"


def probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (one module), built by hand: installing it needs no network and no build."""
    name, version = "setup_cell_probe", "1.0"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": "VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: setup-cell-probe\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture()
def kernel(tmp_path: Path):
    """A fresh python3 kernel whose pip installs into a temporary folder and never reaches an index."""
    from jupyter_client.manager import start_new_kernel

    target = str(tmp_path / "target")  # on the kernel's path before it exists, like a fresh site-packages entry
    env = {**os.environ, "PIP_TARGET": target, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [target, os.environ.get("PYTHONPATH")]))}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_all(kc, cells: list[str], timeout: float = 300) -> list[dict]:
    """Queue every cell at once, as "Run all" does (stop on error), and collect each one's reply and outputs."""
    ids = [kc.execute(code, stop_on_error=True) for code in cells]
    results = {i: {"status": None, "text": "", "errors": []} for i in ids}
    pending = set(ids)
    while pending:
        reply = kc.get_shell_msg(timeout=timeout)
        parent = reply["parent_header"].get("msg_id")
        if parent in pending:
            results[parent]["status"] = reply["content"]["status"]
            pending.discard(parent)
    idle = set()
    while idle != set(ids):  # outputs arrive on iopub; each request ends with status idle
        msg = kc.get_iopub_msg(timeout=timeout)
        parent = msg["parent_header"].get("msg_id")
        if parent not in results:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            results[parent]["text"] += content["text"]
        elif kind == "error":
            results[parent]["errors"].append(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            idle.add(parent)
    return [results[i] for i in ids]


def test_a_failed_install_stops_run_all_with_one_sentence(kernel):
    cell = nbtools.setup_source("vae-course @ git+http://127.0.0.1:9/none")
    fake, setup, after = run_all(kernel, [FAKE_COLAB, cell, NEXT_CELL])
    assert fake["status"] == "ok"
    assert setup["status"] == "error" and len(setup["errors"]) == 1
    (traceback,) = setup["errors"]
    assert len(traceback) == 1 and "\n" not in traceback[0], f"expected one line, got:\n{traceback}"
    line = traceback[0]
    assert line.startswith("Setup failed: pip could not install the course's package"), line
    assert "(fatal: unable to access 'http://127.0.0.1:9/none/'" in line, f"the line says what failed: {line}"
    assert "\x1b" not in line, "pip's colours must not leak into the message"
    assert line.endswith("then run this cell again."), line
    assert "restart" not in (setup["text"] + line).lower()
    assert after["status"] == "aborted" and "NEXT CELL RAN" not in after["text"], \
        "Run all went on after the failed install"


def test_a_working_install_gives_no_restart_advice(kernel, tmp_path: Path):
    wheel = probe_wheel(tmp_path)
    cell = nbtools.setup_source(f"setup-cell-probe @ {wheel.as_uri()}")
    fake, setup, after = run_all(kernel, [FAKE_COLAB, cell, "import setup_cell_probe\n" + NEXT_CELL])
    assert setup["status"] == "ok" and not setup["errors"], setup
    assert "restart" not in setup["text"].lower(), setup["text"]
    assert setup["text"].strip().endswith("done."), setup["text"]
    assert (tmp_path / "target" / "setup_cell_probe.py").is_file(), "pip did not install the package"
    assert after["status"] == "ok" and "NEXT CELL RAN" in after["text"], "the next cell imports what was installed"


def test_outside_colab_the_cell_does_nothing(kernel):
    setup, after = run_all(kernel, [nbtools.setup_source("vae-course @ git+http://127.0.0.1:9/none"), NEXT_CELL])
    assert setup == {"status": "ok", "text": "", "errors": []}
    assert "NEXT CELL RAN" in after["text"]


def test_the_generated_cell_installs_the_configured_repository():
    url, branch = nbtools.repo_settings()
    assert f'"vae-course @ git+{url}@{branch}"' in nbtools.setup_source()
    assert "%pip" not in nbtools.setup_source(), "%pip always prints restart advice"
