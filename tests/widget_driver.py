"""Build and drive both explorers under whichever ipywidgets is importable.

Run by tests/test_widget_versions.py as ``python tests/widget_driver.py MAJOR``
in a fresh interpreter (once with ipywidgets 8 from the venv, once with Colab's
7.7.1 put first on ``PYTHONPATH``). It exits non-zero, with the reason, if the
wrong ipywidgets was imported or an explorer misbehaves; prints ``OK <version>``.
"""
from __future__ import annotations

import re
import sys

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import torch  # noqa: E402

from vae_course.losses import kl_divergence  # noqa: E402
from vae_course.models import VAE  # noqa: E402
from vae_course.widgets import kl_explorer, latent_explorer  # noqa: E402


def drive_kl_explorer() -> None:
    box = kl_explorer()
    for mu, logvar in ((0.0, 0.0), (2.0, 1.0), (-1.5, -3.0)):
        box.mu_slider.value, box.logvar_slider.value = mu, logvar
        shown = float(re.search(r"=\s*([-0-9.]+)\s*nats", box.kl_label.value).group(1))
        want = kl_divergence(torch.tensor([[mu]]), torch.tensor([[logvar]])).item()
        assert abs(shown - want) < 1e-3, f"kl_explorer shows {shown} for mu={mu}, logvar={logvar}; want {want:.4f}"


def drive_latent_explorer() -> None:
    torch.manual_seed(0)
    ex = latent_explorer(VAE(latent_dim=4).eval())
    first_image, first_digit = ex.image.value, ex.decoded().clone()
    assert first_image[:4] == b"\x89PNG", "the explorer's image is not a PNG"
    ex.sliders[0].value = 2.0
    assert ex.z[0].item() == 2.0 and ex.image.value != first_image, "moving a slider did not redraw"
    assert not torch.equal(ex.decoded(), first_digit)
    ex.dims_dropdown.value = (2, 3)
    ex.sliders[1].value = -1.5
    assert ex.z.tolist() == [2.0, 0.0, 0.0, -1.5], f"the code after switching dimensions is {ex.z.tolist()}"
    assert "z = (2.00, 0.00, 0.00, -1.50)" in ex.readout.value, ex.readout.value


def main() -> int:
    major = sys.argv[1]
    if ipywidgets.__version__.split(".")[0] != major:
        print(f"expected ipywidgets {major}.x, imported {ipywidgets.__version__} from {ipywidgets.__file__}")
        return 2
    drive_kl_explorer()
    drive_latent_explorer()
    print(f"OK {ipywidgets.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
