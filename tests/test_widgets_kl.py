"""The KL explorer widget of notebook 4 shows the same KL as vae_course.losses."""
import re

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("ipywidgets")

from vae_course.losses import kl_divergence  # noqa: E402
from vae_course.widgets import kl_densities_figure, kl_explorer  # noqa: E402


def shown_kl(box) -> float:
    match = re.search(r"=\s*([-0-9.]+)\s*nats", box.kl_label.value)
    assert match, box.kl_label.value
    return float(match.group(1))


def reference(mu: float, logvar: float) -> float:
    return kl_divergence(torch.tensor([[mu]]), torch.tensor([[logvar]])).item()


def test_initial_value_and_slider_changes():
    box = kl_explorer()
    assert shown_kl(box) == pytest.approx(reference(1.0, -1.0), abs=1e-4)
    for mu, logvar in ((0.0, 0.0), (2.0, 1.0), (-1.5, -3.0)):
        box.mu_slider.value = mu
        box.logvar_slider.value = logvar
        assert shown_kl(box) == pytest.approx(reference(mu, logvar), abs=1e-4)
    box.mu_slider.value, box.logvar_slider.value = 0.0, 0.0
    assert shown_kl(box) == pytest.approx(0.0, abs=1e-6)  # q = prior


def test_static_figure_title():
    fig = kl_densities_figure(1.0, -1.0)
    title = fig.axes[0].get_title()
    assert f"{reference(1.0, -1.0):.3f}" in title
