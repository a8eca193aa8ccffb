"""Checks used by notebook 2: the Gaussian log-density and the toy model's ELBO."""
import math

import pytest
import torch

from vae_course import checks, losses

from .helpers import assert_recognised, verdict


# ------------------------------------------------------ Gaussian log-density
def log_density(z, mu, logvar):
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def test_gaussian_log_density_right(capsys):
    assert verdict(capsys, checks.check_gaussian_log_density, log_density)[0] is True
    normal = lambda z, m, lv: torch.distributions.Normal(m, (0.5 * lv).exp()).log_prob(z).sum(-1)  # noqa: E731
    assert verdict(capsys, checks.check_gaussian_log_density, normal)[0] is True


@pytest.mark.parametrize("name, fn", [
    ("missing the log(2 pi) constant", lambda z, m, lv: -0.5 * (lv + (z - m).pow(2) / lv.exp()).sum(-1)),
    ("divided by sigma instead of sigma^2",
     lambda z, m, lv: -0.5 * (math.log(2 * math.pi) + lv + (z - m).pow(2) / (0.5 * lv).exp()).sum(-1)),
    ("missing the log-variance term",
     lambda z, m, lv: -0.5 * (math.log(2 * math.pi) + (z - m).pow(2) / lv.exp()).sum(-1)),
    ("negative log-density", lambda z, m, lv: -log_density(z, m, lv)),
    ("mean over dimensions", lambda z, m, lv: log_density(z, m, lv) / z.shape[-1]),
    ("missing 1/2", lambda z, m, lv: -(math.log(2 * math.pi) + lv + (z - m).pow(2) / lv.exp()).sum(-1)),
])
def test_gaussian_log_density_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_gaussian_log_density, fn, name)


# ------------------------------------------------------------ the toy ELBO
def toy_elbo(model, x, q_mu, q_logvar):
    var = q_logvar.exp()
    sq = (x - q_mu @ model.W.T - model.b).pow(2).sum(-1)
    spread = (var * model.W.pow(2).sum(0)).sum(-1)  # tr(W S W^T) for diagonal S
    s2 = model.sigma**2
    recon = -0.5 * ((sq + spread) / s2 + model.d * math.log(2 * math.pi * s2))
    return recon - losses.kl_divergence(q_mu, q_logvar)


def test_toy_elbo_right(capsys):
    assert verdict(capsys, checks.check_toy_elbo, toy_elbo)[0] is True
    assert verdict(capsys, checks.check_toy_elbo, None)[0] is None


def _recon(model, x, m, lv):
    return toy_elbo(model, x, m, lv) + losses.kl_divergence(m, lv)


def _sigma_as_variance(model, x, m, lv):
    sq = (x - m @ model.W.T - model.b).pow(2).sum(-1) + (lv.exp() * model.W.pow(2).sum(0)).sum(-1)
    recon = -0.5 * (sq / model.sigma + model.d * math.log(2 * math.pi * model.sigma))
    return recon - losses.kl_divergence(m, lv)


@pytest.mark.parametrize("name, fn", [
    ("spread of q forgotten", lambda mo, x, m, lv: mo.log_likelihood(x, m) - losses.kl_divergence(m, lv)),
    ("KL forgotten", _recon),
    ("KL added", lambda mo, x, m, lv: _recon(mo, x, m, lv) + losses.kl_divergence(m, lv)),
    ("sigma used as the variance", _sigma_as_variance),
])
def test_toy_elbo_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_toy_elbo, fn, name)


def test_unrecognised_toy_elbo_gets_the_generic_hint(capsys):
    result, out = verdict(capsys, checks.check_toy_elbo, lambda mo, x, m, lv: toy_elbo(mo, x, m, lv) * 1.5)
    assert result is False and "term by term" in out
