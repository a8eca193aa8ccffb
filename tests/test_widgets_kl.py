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


# The formulas notebook 4 derives, checked the same three ways as in the notebook.
def test_kl_three_ways():
    import math

    import torch.distributions as D

    from vae_course.losses import gaussian_kl

    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 6, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, 6, generator=g, dtype=torch.float64) * 0.7
    std = torch.exp(0.5 * logvar)
    q = D.Independent(D.Normal(mu, std), 1)
    p = D.Independent(D.Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    want = D.kl_divergence(q, p)
    assert torch.allclose(kl_divergence(mu, logvar).double(), want, rtol=1e-5)
    assert torch.allclose(gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(mu)).double(), want, rtol=1e-5)
    z = mu + std * torch.randn((50_000, 3, 6), generator=g, dtype=torch.float64)
    terms = q.log_prob(z) - p.log_prob(z)
    se = terms.std(0) / math.sqrt(len(z))
    assert ((terms.mean(0) - want).abs() < 5 * se).all()


def test_gaussian_kl_general_and_asymmetric():
    import torch.distributions as D

    from vae_course.losses import gaussian_kl

    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(4))
    q = D.Independent(D.Normal(mq, torch.exp(0.5 * lq)), 1)
    p = D.Independent(D.Normal(mp, torch.exp(0.5 * lp)), 1)
    assert torch.allclose(gaussian_kl(mq, lq, mp, lp).double(), D.kl_divergence(q, p), rtol=1e-5)
    assert not torch.allclose(gaussian_kl(mq, lq, mp, lp), gaussian_kl(mp, lp, mq, lq))


def test_mixed_reductions_weight_the_kl():
    """recon.sum() + kl.mean() weights the KL by 1/batch relative to the reconstruction."""
    recon = torch.full((8,), 100.0, requires_grad=True)
    kl = torch.full((8,), 25.0, requires_grad=True)
    grad_r, grad_k = torch.autograd.grad(recon.sum() + kl.mean(), (recon, kl))
    assert (grad_k / grad_r).allclose(torch.full((8,), 1 / 8))
