"""Unit tests for vae_course.diagnostics (posterior collapse, rate and distortion)."""
import math

import pytest
import torch

from vae_course import diagnostics as D
from vae_course.losses import kl_divergence
from vae_course.models import VAE


def _mu_with_dead_dims():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 6, generator=g)
    mu[:, 1] *= 0.01   # variance ~1e-4: inactive
    mu[:, 4] = 0.3     # constant: inactive
    return mu


def test_activity_is_the_variance_of_posterior_means():
    mu = _mu_with_dead_dims()
    assert torch.allclose(D.activity(mu), mu.var(dim=0))
    assert D.activity(mu).shape == (6,)


def test_active_units_counts_dimensions_above_threshold():
    mu = _mu_with_dead_dims()
    assert D.active_units(mu) == 4
    assert D.active_units(mu, threshold=10.0) == 0
    assert D.active_units(torch.zeros(10, 3)) == 0


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.zeros(1, 3), "mu"])
def test_activity_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        D.activity(bad)


def test_mean_kl_per_dimension_sums_to_mean_kl():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    per_dim = D.mean_kl_per_dimension(mu, logvar)
    assert per_dim.shape == (5,)
    assert torch.all(per_dim >= 0)
    assert torch.allclose(per_dim.sum(), kl_divergence(mu, logvar).mean())


def test_posterior_params_and_collapse_summary_on_a_small_model():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden_dim=16)
    x = torch.rand(30, 1, 28, 28)
    mu, logvar = D.posterior_params(model, x, batch_size=7)
    assert mu.shape == logvar.shape == (30, 4)
    ref_mu, ref_lv = (t.detach() for t in model.encode(x))
    assert torch.allclose(mu, ref_mu, atol=1e-6)
    s = D.collapse_summary(model, x)
    assert s["latent_dim"] == 4
    assert 0 <= s["active_units"] <= 4
    assert s["kl_per_dim"].shape == (4,) and s["activity"].shape == (4,)
    assert math.isclose(s["kl"], float(kl_divergence(ref_mu, ref_lv).mean()), rel_tol=1e-4)


def test_posterior_params_rejects_an_autoencoder():
    from vae_course.models import Autoencoder
    with pytest.raises(TypeError):
        D.posterior_params(Autoencoder(latent_dim=2, hidden_dim=8), torch.rand(2, 1, 28, 28))


def test_rate_distortion_adds_up_to_the_elbo():
    torch.manual_seed(0)
    model = VAE(latent_dim=3, hidden_dim=16)
    x = torch.bernoulli(torch.full((20, 1, 28, 28), 0.2))
    rd = D.rate_distortion(model, x)
    assert rd["rate"] >= 0 and rd["distortion"] > 0
    assert math.isclose(rd["elbo"], -(rd["rate"] + rd["distortion"]))
    assert math.isclose(rd["rate_bits"], rd["rate"] / math.log(2))


def test_nats_to_bits():
    assert math.isclose(D.nats_to_bits(math.log(2)), 1.0)
    assert torch.allclose(D.nats_to_bits(torch.tensor([math.log(8)])), torch.tensor([3.0]))
