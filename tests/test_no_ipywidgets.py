"""Without ipywidgets (a plain Jupyter install), the explorers show static figures and no bar warns.

A real Jupyter kernel is started with ipywidgets made unimportable: a
``sitecustomize`` on its ``PYTHONPATH`` wraps the import system's path finder so
that it does not find ``ipywidgets`` (``import ipywidgets`` raises
``ModuleNotFoundError``, ``importlib.util.find_spec`` returns ``None``), exactly
as when the package is not installed. In that kernel:

* ``display(kl_explorer())`` and ``display(latent_explorer(model))`` show one PNG
  figure each and one line saying how to get the sliders, and the explorers'
  attributes still work (a cell can set the sliders, as notebook 7's static
  views do);
* training a model with its progress bar on prints no ``TqdmWarning``;
* as a control, ``tqdm.auto`` in the same kernel does warn: the kernel really
  reproduces a Jupyter without ipywidgets.
"""
from __future__ import annotations

import os
import textwrap

import pytest

from course_testing import data_available

HIDE_IPYWIDGETS = textwrap.dedent("""
    # Written by tests/test_no_ipywidgets.py: this Python cannot find ipywidgets, as if it were not installed.
    import sys
    from importlib.machinery import PathFinder

    class _WithoutIpywidgets(PathFinder):
        @classmethod
        def find_spec(cls, fullname, path=None, target=None):
            if fullname.split(".")[0] == "ipywidgets":
                return None
            return PathFinder.find_spec(fullname, path, target)

    sys.meta_path[:] = [_WithoutIpywidgets if finder is PathFinder else finder for finder in sys.meta_path]
""")

EXPLORERS = """
import importlib.util
import torch
from IPython.display import display
from vae_course.models import VAE
from vae_course.widgets import STATIC_NOTE, kl_explorer, latent_explorer

assert importlib.util.find_spec("ipywidgets") is None
box = kl_explorer(mu=0.5, logvar=-1.0)
box.mu_slider.value = 0.0
box.logvar_slider.value = 0.0
assert box.kl_label.value == "KL(q ‖ p) = 0.0000 nats", box.kl_label.value
display(box)
torch.manual_seed(0)
ex = latent_explorer(VAE(latent_dim=5).eval())
ex.sliders[0].value = 1.0
ex.dims_dropdown.value = (2, 4)
ex.sliders[1].value = -9.0  # beyond the range: clamped, as a slider does
assert ex.z.tolist() == [1.0, 0.0, 0.0, 0.0, -3.0], ex.z.tolist()
assert torch.equal(ex.decoded(), torch.sigmoid(ex.model.decode(ex.z[None]))[0, 0].detach())
display(ex)
print("EXPLORERS DONE")
"""

TRAINING = """
from vae_course.train import TrainConfig, Trainer
trainer = Trainer(TrainConfig(model="vae", epochs=1, limit_train=256, limit_test=64, batch_size=64), progress=True)
trainer.fit()
print("TRAINED")
"""

CONTROL = "from tqdm.auto import tqdm"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    from jupyter_client.manager import start_new_kernel

    site = tmp_path_factory.mktemp("hide_ipywidgets")
    (site / "sitecustomize.py").write_text(HIDE_IPYWIDGETS)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(site),
                              env={**os.environ, "PYTHONPATH": path,
                                   "MPLBACKEND": "module://matplotlib_inline.backend_inline"})  # as in Jupyter
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code: str) -> dict:
    """Run one cell; return its status, stdout, stderr and the MIME types of what it displayed."""
    out = {"stdout": "", "stderr": "", "displayed": [], "error": ""}

    def hook(msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out[content["name"]] += content["text"]
        elif kind in ("display_data", "execute_result"):
            out["displayed"].append(sorted(content["data"]))
        elif kind == "error":
            out["error"] = "\n".join(content["traceback"])

    reply = kc.execute_interactive(code, timeout=600, output_hook=hook)
    out["status"] = reply["content"]["status"]
    return out


def test_ipywidgets_is_really_missing_in_the_kernel(kernel):
    result = run(kernel, "import ipywidgets")
    assert result["status"] == "error" and "ModuleNotFoundError" in result["error"]


def test_the_explorers_fall_back_to_static_figures(kernel):
    result = run(kernel, EXPLORERS)
    assert result["status"] == "ok", result["error"][-3000:]
    assert "EXPLORERS DONE" in result["stdout"]
    figures = [kinds for kinds in result["displayed"] if "image/png" in kinds]
    assert len(figures) == 2, f"expected the two static figures, displayed: {result['displayed']}"
    from vae_course.widgets import STATIC_NOTE

    assert result["stdout"].count(STATIC_NOTE) == 2
    assert result["stderr"] == "", f"nothing may warn:\n{result['stderr']}"


@pytest.mark.skipif(not data_available("MNIST"), reason="MNIST files not found: set VAE_COURSE_DATA")
def test_training_with_a_progress_bar_prints_no_warning(kernel):
    result = run(kernel, TRAINING)
    assert result["status"] == "ok", result["error"][-3000:]
    assert "TRAINED" in result["stdout"]
    assert "Warning" not in result["stderr"] and "IProgress" not in result["stderr"], result["stderr"]


def test_control_tqdm_auto_does_warn_in_this_kernel(kernel):
    """Proves the kernel reproduces the problem: tqdm's notebook bar without ipywidgets warns."""
    result = run(kernel, CONTROL)
    assert "IProgress not found" in result["stderr"], result["stderr"]
