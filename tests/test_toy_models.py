"""The linear-Gaussian toy model of notebook 2, checked against torch.distributions,
Bayes' rule and Monte Carlo (fixed seeds, tolerances of several standard errors)."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vae_course.toy_models import (
    LinearGaussian,
    diag_gaussian_log_density,
    gaussian_kl_full,
    gaussian_log_density,
)

F64 = torch.float64


@pytest.fixture
def model():
    return LinearGaussian.random(d=5, k=2, sigma=0.5, seed=0)


@pytest.fixture
def x(model):
    return model.sample(6, generator=torch.Generator().manual_seed(1))[0]


def random_cov(k, g, batch=None):
    shape = (k, k) if batch is None else (batch, k, k)
    a = torch.randn(*shape, generator=g, dtype=F64)
    return a @ a.transpose(-1, -2) + 0.1 * torch.eye(k, dtype=F64)


def test_gaussian_log_density_matches_torch():
    g = torch.Generator().manual_seed(2)
    for batched in (False, True):
        cov = random_cov(3, g, batch=4 if batched else None)
        mean, x = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
        want = MultivariateNormal(mean, cov).log_prob(x)
        assert torch.allclose(gaussian_log_density(x, mean, cov), want, atol=1e-10)


def test_diag_gaussian_log_density_matches_normal():
    g = torch.Generator().manual_seed(3)
    x, mu, logvar = (torch.randn(5, 4, generator=g) for _ in range(3))
    want = Normal(mu, (0.5 * logvar).exp()).log_prob(x).sum(-1)
    assert diag_gaussian_log_density(x, mu, logvar).shape == (5,)
    assert torch.allclose(diag_gaussian_log_density(x, mu, logvar), want, atol=1e-5)


def test_gaussian_kl_full_matches_torch_and_is_zero_for_equal():
    g = torch.Generator().manual_seed(4)
    mq, mp = torch.randn(3, 2, generator=g, dtype=F64), torch.randn(3, 2, generator=g, dtype=F64)
    cq, cp = random_cov(2, g, batch=3), random_cov(2, g)
    want = kl_divergence(MultivariateNormal(mq, cq), MultivariateNormal(mp, cp))
    assert torch.allclose(gaussian_kl_full(mq, cq, mp, cp), want, atol=1e-10)
    assert torch.allclose(gaussian_kl_full(mq, cq, mq, cq), torch.zeros(3, dtype=F64), atol=1e-12)


def test_log_marginal_matches_multivariate_normal(model, x):
    want = MultivariateNormal(model.b, model.W @ model.W.T + 0.25 * torch.eye(5, dtype=F64)).log_prob(x)
    assert torch.allclose(model.log_marginal(x), want, atol=1e-10)


def test_posterior_is_bayes_rule(model, x):
    """log p(z|x) = log p(x, z) - log p(x) at any z, for the closed-form posterior."""
    mean, cov = model.posterior(x)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    lhs = MultivariateNormal(mean, cov).log_prob(z)
    rhs = model.log_joint(x, z) - model.log_marginal(x)
    assert torch.allclose(lhs, rhs, atol=1e-10)


def test_log_marginal_by_monte_carlo(model, x):
    """p(x) = E_{p(z)}[p(x|z)]: a prior-sampling estimate agrees within a few standard errors."""
    z = torch.randn(200_000, 1, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    lik = model.log_likelihood(x, z).exp()  # (samples, batch)
    est, se = lik.mean(0), lik.std(0) / math.sqrt(len(z))
    assert torch.all((est - model.log_marginal(x).exp()).abs() < 5 * se)


def test_elbo_identity_and_bound(model, x):
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        q_mean = torch.randn(6, 2, generator=g, dtype=F64)
        q_cov = random_cov(2, g, batch=6)
        elbo, gap = model.elbo(x, q_mean, q_cov), model.gap(x, q_mean, q_cov)
        assert torch.allclose(elbo + gap, model.log_marginal(x), atol=1e-9)
        assert torch.all(gap > 0) and torch.all(elbo < model.log_marginal(x))


def test_gap_closes_at_the_posterior(model, x):
    mean, cov = model.posterior(x)
    assert torch.allclose(model.elbo(x, mean, cov), model.log_marginal(x), atol=1e-10)
    assert torch.allclose(model.gap(x, mean, cov), torch.zeros(6, dtype=F64), atol=1e-10)


def test_elbo_terms_match_torch_distributions(model, x):
    g = torch.Generator().manual_seed(8)
    q_mean, q_cov = torch.randn(6, 2, generator=g, dtype=F64), random_cov(2, g)
    prior = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    want_kl = kl_divergence(MultivariateNormal(q_mean, q_cov), prior)
    assert torch.allclose(model.kl_to_prior(q_mean, q_cov), want_kl, atol=1e-10)
    post_mean, post_cov = model.posterior(x)
    want_gap = kl_divergence(MultivariateNormal(q_mean, q_cov), MultivariateNormal(post_mean, post_cov))
    assert torch.allclose(model.gap(x, q_mean, q_cov), want_gap, atol=1e-9)


def test_monte_carlo_elbo_within_standard_errors(model, x):
    g = torch.Generator().manual_seed(9)
    q_mean, q_cov = torch.randn(6, 2, generator=g, dtype=F64), random_cov(2, g) * 0.3
    est, se = model.elbo_monte_carlo(x, q_mean, q_cov, 20_000, generator=g)
    assert est.shape == se.shape == (6,)
    assert torch.all((est - model.elbo(x, q_mean, q_cov)).abs() < 4 * se)
    # At the exact posterior log p(x,z) - log q(z) = log p(x) for every z: zero variance.
    mean, cov = model.posterior(x)
    est, se = model.elbo_monte_carlo(x, mean, cov, 10, generator=g)
    assert torch.allclose(est, model.log_marginal(x), atol=1e-9) and torch.all(se < 1e-9)


def test_sample_shapes_and_moments(model):
    x, z = model.sample(100_000, generator=torch.Generator().manual_seed(10))
    assert x.shape == (100_000, 5) and z.shape == (100_000, 2)
    assert torch.allclose(x.mean(0), model.b, atol=0.05)
    assert torch.allclose(torch.cov(x.T), model.marginal_cov(), atol=0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(torch.ones(3, 2), torch.zeros(3), sigma=0.0)
    with pytest.raises(ValueError, match="W must be"):
        LinearGaussian(torch.ones(3, 2), torch.zeros(2), sigma=1.0)
    m = LinearGaussian.random()
    with pytest.raises(ValueError, match="n_samples"):
        m.elbo_monte_carlo(torch.zeros(1, 5), torch.zeros(1, 2), torch.eye(2), 1)
    with pytest.raises(ValueError, match="cov"):
        gaussian_log_density(torch.zeros(2, 3), torch.zeros(2, 3), torch.eye(2))
