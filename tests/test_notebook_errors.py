"""Issue 19, item 5: inside a notebook, a missing dataset is one short message that says how to
fix it from the notebook itself, without a traceback (issue 23's one-line errors, in a kernel).

A real IPython kernel (jupyter_client) runs the learner's cell; what it sends back as the
error is what Jupyter and Colab show. No network: downloads go to a closed local port.
"""
from __future__ import annotations

import queue

import pytest

from course_testing import OFFLINE_ENV, ROOT, cli_env, data_available

jupyter_client = pytest.importorskip("jupyter_client")

TIMEOUT_S = 240  # one cell (a failed download gives up at once: the proxy's port is closed)


def _run_cell(client, code: str) -> dict:
    """Execute ``code``; return ``{"error": <error content or None>, "text": <stdout and stderr>}``."""
    msg_id = client.execute(code)
    error, text = None, []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"the kernel sent nothing for {TIMEOUT_S} s while running {code!r}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            error = content
        elif kind == "stream":
            text.append(content["text"])
        elif kind == "status" and content["execution_state"] == "idle":
            return {"error": error, "text": "".join(text)}


@pytest.fixture
def kernel(tmp_path):
    """A fresh kernel whose VAE_COURSE_DATA is an empty folder and whose cache is empty, offline."""
    (tmp_path / "empty").mkdir()
    env = cli_env(VAE_COURSE_DATA=str(tmp_path / "empty"), VAE_COURSE_CACHE=str(tmp_path / "cache"),
                  PYTHONPATH=str(ROOT), **OFFLINE_ENV)
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT_S)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _shown(error: dict) -> str:
    """The text Jupyter shows for an error: its traceback lines (ANSI colours removed)."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))


def test_a_missing_dataset_in_a_notebook_is_a_short_fix_it_here_message(kernel):
    result = _run_cell(kernel, "from vae_course import load_data\nload_data('mnist')")
    error = result["error"]
    assert error is not None and error["ename"] == "DataNotFoundError", result
    shown = _shown(error)
    assert len(shown.splitlines()) <= 3 and "Traceback" not in shown and "File " not in shown, shown
    assert "%env VAE_COURSE_DATA=" in shown and 'os.environ["VAE_COURSE_DATA"]' in shown, shown
    assert "shared/data" not in shown and "export " not in shown, shown  # nothing the kernel cannot act on
    # no VAE_COURSE_DATA at all: the download is tried, and why it failed is said, still short
    result = _run_cell(kernel, "import os\nos.environ.pop('VAE_COURSE_DATA')\nload_data('mnist')")
    shown = _shown(result["error"])
    assert len(shown.splitlines()) <= 3 and "the download of train-images-idx3-ubyte.gz failed (" in shown and "%env" in shown, shown


@pytest.mark.skipif(not data_available("MNIST"), reason="MNIST files not found: set VAE_COURSE_DATA")
def test_the_fix_the_message_gives_works_from_the_notebook(kernel):
    import os

    assert _run_cell(kernel, "from vae_course import load_data\nload_data('mnist')")["error"] is not None
    # the learner follows the message, in the same kernel: %env, then the same cell again
    folder = os.environ["VAE_COURSE_DATA"]
    result = _run_cell(kernel, f"%env VAE_COURSE_DATA={folder}\nd = load_data('mnist', limit_train=5, limit_test=5)\n"
                               f"print(d.train_y.tolist())")
    assert result["error"] is None and "[5, 0, 4, 1, 9]" in result["text"], result
