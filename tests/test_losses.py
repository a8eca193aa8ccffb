"""The formulas in ``vae_course.losses`` against torch.distributions, closed forms,
finite differences and Monte Carlo estimates (fixed seeds, tolerances of several
standard errors)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal, kl_divergence as torch_kl

from vae_course import losses
from vae_course.losses import kl_divergence


def _randn(*shape, seed=0, scale=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


# ------------------------------------------------------------------ KL terms
def test_kl_divergence_matches_torch_distributions():
    mu, logvar = _randn(16, 20, seed=1, scale=2), _randn(16, 20, seed=2, scale=1.5)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch_kl(q, p).sum(-1)
    got = losses.kl_divergence(mu, logvar)
    assert got.shape == (16,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_kl_divergence_is_the_seed_formula_and_zero_at_the_prior():
    mu, logvar = _randn(5, 3, seed=3), _randn(5, 3, seed=4)
    seed = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
    torch.testing.assert_close(losses.kl_divergence(mu, logvar), seed)
    assert torch.equal(losses.kl_divergence(torch.zeros(4, 7), torch.zeros(4, 7)), torch.zeros(4))
    assert (losses.kl_divergence(mu, logvar) >= 0).all()


def test_kl_per_dimension_sums_to_kl():
    mu, logvar = _randn(6, 4, seed=5), _randn(6, 4, seed=6)
    per_dim = losses.kl_per_dimension(mu, logvar)
    assert per_dim.shape == (6, 4)
    torch.testing.assert_close(per_dim.sum(-1), losses.kl_divergence(mu, logvar))


def test_gaussian_kl_matches_torch_distributions_and_reduces_to_kl():
    mq, lq, mp, lp = (_randn(8, 5, seed=s) for s in (7, 8, 9, 10))
    expected = torch_kl(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    torch.testing.assert_close(losses.gaussian_kl(mq, lq, mp, lp), expected, rtol=1e-5, atol=1e-5)
    zeros = torch.zeros(5)  # the prior broadcasts from (latent_dim,)
    torch.testing.assert_close(losses.gaussian_kl(mq, lq, zeros, zeros), losses.kl_divergence(mq, lq))


def test_kl_closed_form_agrees_with_monte_carlo():
    """KL = E_q[log q(z) - log p(z)]: estimate it from 200 000 samples and compare
    within 5 standard errors of the estimate."""
    mu = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.2, -0.7, 0.9]], dtype=torch.float64)
    g = torch.Generator().manual_seed(123)
    n = 200_000
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, 3, generator=g, dtype=torch.float64)
    q, p = Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
    samples = (q.log_prob(z) - p.log_prob(z)).sum(-1)
    estimate, stderr = samples.mean().item(), samples.std().item() / math.sqrt(n)
    exact = losses.kl_divergence(mu, logvar).item()
    assert abs(estimate - exact) < 5 * stderr, (estimate, exact, stderr)


def test_free_bits_kl_clamps_each_dimension():
    mu = torch.tensor([[0.0, 3.0], [0.0, 3.0]])
    logvar = torch.zeros(2, 2)
    # dimension 0 has KL 0 (below the floor), dimension 1 has KL 4.5 (above it)
    torch.testing.assert_close(losses.free_bits_kl(mu, logvar, 0.5), torch.tensor(0.5 + 4.5))
    torch.testing.assert_close(losses.free_bits_kl(mu, logvar, 0.0), losses.kl_divergence(mu, logvar).mean())
    with pytest.raises(ValueError, match="free_bits"):
        losses.free_bits_kl(mu, logvar, -1.0)


# ------------------------------------------------------------------ reparameterize
def test_reparameterize_passes_gradcheck_in_float64():
    mu = _randn(3, 4, seed=11, dtype=torch.float64).requires_grad_()
    logvar = _randn(3, 4, seed=12, dtype=torch.float64).requires_grad_()

    def fn(m, lv):  # the same noise on every call, so finite differences are meaningful
        return losses.reparameterize(m, lv, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(fn, (mu, logvar), eps=1e-6, atol=1e-5)


def test_reparameterize_is_mu_plus_sigma_eps_and_reproducible():
    mu, logvar = _randn(2, 3, seed=13), _randn(2, 3, seed=14)
    z1 = losses.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(z1, mu + torch.exp(0.5 * logvar) * eps)
    z2 = losses.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(5))
    assert torch.equal(z1, z2)


def test_reparameterize_samples_have_the_right_mean_and_variance():
    """Monte Carlo: 100 000 samples; the mean within 5 standard errors, the
    variance within 5 standard errors of the sample variance."""
    n = 100_000
    mu = torch.tensor([1.5, -2.0, 0.0]).expand(n, 3)
    logvar = torch.tensor([0.0, 1.0, -2.0]).expand(n, 3)
    z = losses.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(7)).double()
    var = torch.exp(torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64))
    se_mean = (var / n).sqrt()
    assert ((z.mean(0) - mu[0].double()).abs() < 5 * se_mean).all()
    se_var = var * math.sqrt(2 / (n - 1))  # the standard error of a Gaussian sample variance
    assert ((z.var(0) - var).abs() < 5 * se_var).all()


def test_reparameterize_gradient_estimates_d_dmu_of_expectation():
    """The pathwise gradient of E[z^2] = mu^2 + sigma^2 is (2 mu, sigma^2) w.r.t. (mu, logvar)."""
    n = 200_000
    mu = torch.full((n, 1), 0.7, dtype=torch.float64, requires_grad=True)
    logvar = torch.full((n, 1), -0.4, dtype=torch.float64, requires_grad=True)
    z = losses.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(8))
    (z.pow(2).mean()).backward()
    g_mu, g_lv = mu.grad.sum().item(), logvar.grad.sum().item()
    assert abs(g_mu - 1.4) < 0.02
    assert abs(g_lv - math.exp(-0.4)) < 0.02


# ------------------------------------------------------------------ reconstruction terms
def test_bernoulli_nll_matches_torch_distributions():
    logits = _randn(4, 1, 28, 28, seed=15, scale=3)
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.4), generator=torch.Generator().manual_seed(1))
    expected = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    got = losses.bernoulli_nll(logits, x)
    assert got.shape == (4,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-3)
    assert (got > 0).all()


def test_bernoulli_nll_is_stable_for_huge_logits_and_float32_under_half():
    logits = torch.tensor([[[[1000.0, -1000.0]]]])
    x = torch.tensor([[[[1.0, 0.0]]]])
    assert torch.equal(losses.bernoulli_nll(logits, x), torch.zeros(1))
    assert losses.bernoulli_nll(logits.half(), x.half()).dtype == torch.float32


def test_bernoulli_nll_values_and_gradients_match_pytorchs_bce_with_logits():
    # bernoulli_nll writes its gradient out by hand (sigmoid(l) - x): check it against
    # autograd through the library function, for logits and for (grayscale) targets.
    logits = _randn(5, 1, 28, 28, seed=16, scale=4).double().requires_grad_()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(2)).double().requires_grad_()
    weights = torch.arange(1.0, 6.0, dtype=torch.float64)  # a non-uniform upstream gradient
    (mine := losses.bernoulli_nll(logits.float(), x.float())).mul(weights.float()).sum().backward()
    ours_l, ours_x = logits.grad.clone(), x.grad.clone()
    logits.grad, x.grad = None, None
    ref = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    (ref * weights).sum().backward()
    torch.testing.assert_close(mine.double(), ref.detach(), rtol=1e-6, atol=2e-4)
    torch.testing.assert_close(ours_l, logits.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_x, x.grad, rtol=1e-5, atol=1e-5)


def test_bernoulli_nll_passes_gradcheck_in_float64():
    # bernoulli_nll computes in float32 (see the module docstring), so check the
    # hand-written backward directly in float64.
    logits = _randn(2, 1, 4, 4, seed=17, scale=3).double().requires_grad_()
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(3)).double().requires_grad_()
    assert torch.autograd.gradcheck(losses._BernoulliNLL.apply, (logits, x))


def test_bernoulli_nll_gradient_is_the_prediction_error_even_for_huge_logits():
    logits = torch.tensor([[[[1000.0, -1000.0, 0.0]]]], requires_grad=True)
    x = torch.tensor([[[[0.0, 0.0, 1.0]]]])
    losses.bernoulli_nll(logits, x).sum().backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[[[1.0, 0.0, -0.5]]]]))


def test_gaussian_nll_matches_normal_log_prob_and_the_seed():
    x_hat, x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2)), torch.rand(3, 1, 28, 28)
    for sigma in (0.1, 1.0, math.sqrt(0.5)):
        expected = -Normal(x_hat, sigma).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(losses.gaussian_nll(x_hat, x, sigma), expected, rtol=1e-5, atol=1e-3)
    # sigma^2 = 1/2: the seed's squared error plus (D/2) log(pi)
    seed = (x - x_hat).pow(2).flatten(1).sum(1) + 784 / 2 * math.log(math.pi)
    torch.testing.assert_close(losses.gaussian_nll(x_hat, x), seed)


def test_gaussian_nll_accepts_an_empty_batch():
    assert losses.gaussian_nll(torch.zeros(0, 1, 28, 28), torch.zeros(0, 1, 28, 28)).shape == (0,)


def test_vae_loss_and_elbo():
    logits, x = _randn(5, 1, 28, 28, seed=16), torch.rand(5, 1, 28, 28)
    mu, logvar = _randn(5, 20, seed=17), _randn(5, 20, seed=18)
    terms = losses.vae_loss(logits, x, mu, logvar, beta=0.25)
    torch.testing.assert_close(terms.recon, losses.bernoulli_nll(logits, x))
    torch.testing.assert_close(terms.kl, losses.kl_divergence(mu, logvar))
    torch.testing.assert_close(terms.loss, terms.recon + 0.25 * terms.kl)
    torch.testing.assert_close(losses.elbo(terms.recon, terms.kl), -(terms.recon + terms.kl))
    with pytest.raises(ValueError, match="beta"):
        losses.vae_loss(logits, x, mu, logvar, beta=-1)


# ------------------------------------------------------------------ IWAE
def test_iwae_log_likelihood_is_log_mean_exp():
    lw = _randn(4, 10, seed=19, dtype=torch.float64)
    expected = torch.log(torch.exp(lw).mean(1))
    torch.testing.assert_close(losses.iwae_log_likelihood(lw), expected.float())
    # K = 1 is the ordinary ELBO sample
    torch.testing.assert_close(losses.iwae_log_likelihood(lw[:, :1]), lw[:, 0].float())


def test_iwae_log_likelihood_is_stable_and_float32():
    lw = torch.full((2, 50), -1000.0, dtype=torch.float16).float() - 100  # exp() underflows naively
    torch.testing.assert_close(losses.iwae_log_likelihood(lw), torch.full((2,), -1100.0))
    assert losses.iwae_log_likelihood(lw.bfloat16()).dtype == torch.float32


def test_iwae_bound_tightens_with_k_on_a_toy_model():
    """Jensen: E[log mean_k w_k] grows with K and stays below log p(x).

    Toy model: p(z) = N(0,1), p(x|z) = N(z, 1) so p(x) = N(0, 2); the proposal
    q(z|x) = N(0, 1) (deliberately poor). 4000 repetitions per K.
    """
    x = 1.3
    g = torch.Generator().manual_seed(9)
    log_px = Normal(0.0, math.sqrt(2.0)).log_prob(torch.tensor(x)).item()
    means = []
    for k in (1, 10, 100):
        z = torch.randn(4000, k, generator=g, dtype=torch.float64)
        lw = Normal(z, 1.0).log_prob(torch.tensor(x, dtype=torch.float64))  # log p(x|z) + log p(z) - log q(z)
        est = losses.iwae_log_likelihood(lw)
        means.append(est.double().mean().item())
        assert est.double().mean().item() < log_px + 5 * est.double().std().item() / math.sqrt(4000)
    assert means[0] < means[1] < means[2]
    assert abs(means[2] - log_px) < 0.02


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("fn", [losses.kl_divergence, losses.kl_per_dimension, losses.reparameterize])
def test_mismatched_mu_logvar_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="mu and logvar must have the same shape"):
        fn(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(TypeError, match="mu"):
        fn([[0.0]], torch.zeros(1, 1))
    with pytest.raises(TypeError, match="logvar"):
        fn(torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.long))


def test_image_terms_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="logits and x"):
        losses.bernoulli_nll(torch.zeros(2, 1, 28, 28), torch.zeros(2, 784))
    with pytest.raises(ValueError, match="x_hat and x"):
        losses.gaussian_nll(torch.zeros(2, 1, 28, 28), torch.zeros(3, 1, 28, 28))
    with pytest.raises(ValueError, match="sigma"):
        losses.gaussian_nll(torch.zeros(2, 4), torch.zeros(2, 4), sigma=0)
    with pytest.raises(ValueError, match="log_weights"):
        losses.iwae_log_likelihood(torch.zeros(3))
    with pytest.raises(ValueError, match="mu_p"):
        losses.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(4), torch.zeros(3))


# ------------------------------------------------------------------ notebook 4's KL formulas
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


# ----------------------------------------------------- aggregate posterior q(z)
def test_aggregate_posterior_matches_torch_mixture():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(30, 3, generator=g), torch.randn(30, 3, generator=g) * 0.5
    z = torch.randn(7, 3, generator=g) * 2
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(30)),
                                Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))
    got = losses.aggregate_posterior_log_density(z, mu, logvar)
    assert got.shape == (7,)
    torch.testing.assert_close(got, mixture.log_prob(z), rtol=1e-5, atol=1e-5)


def test_aggregate_posterior_of_one_standard_normal_is_the_prior():
    z = torch.linspace(-3, 3, 11)[:, None].repeat(1, 2)
    got = losses.aggregate_posterior_log_density(z, torch.zeros(1, 2), torch.zeros(1, 2))
    torch.testing.assert_close(got, Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_aggregate_posterior_integrates_to_one():
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(20, 2, generator=g), torch.full((20, 2), -1.0)
    grid = torch.linspace(-7, 7, 281)
    zx, zy = torch.meshgrid(grid, grid, indexing="ij")
    dens = losses.aggregate_posterior_log_density(torch.stack([zx.flatten(), zy.flatten()], 1), mu, logvar).exp()
    area = (grid[1] - grid[0]) ** 2
    assert abs(dens.sum().item() * area.item() - 1) < 1e-3


def test_aggregate_posterior_rejects_bad_shapes():
    with pytest.raises(ValueError):
        losses.aggregate_posterior_log_density(torch.zeros(4, 3), torch.zeros(5, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError):
        losses.aggregate_posterior_log_density(torch.zeros(4, 2), torch.zeros(5, 2), torch.zeros(5, 3))
