"""The score-function and pathwise estimators of vae_course.estimators (notebook 3).

Each test compares an estimate with a gradient known in closed form, allowing a
few standard errors (fixed seeds, so the tests are deterministic).
"""
import math

import pytest
import torch

from vae_course import estimators as est


def sin_k(k):
    return lambda z: torch.sin(k * z)


# (f, d/dmu E[f], d/dsigma E[f]) for z ~ N(mu, sigma^2), in closed form.
def exact(name, mu, sigma, k=3.0):
    if name == "square":  # E[z^2] = mu^2 + sigma^2
        return (lambda z: z**2), 2 * mu, 2 * sigma
    if name == "sin":  # E[sin(kz)] = sin(k mu) exp(-k^2 sigma^2 / 2)
        damp = math.exp(-(k**2) * sigma**2 / 2)
        return sin_k(k), k * math.cos(k * mu) * damp, -(k**2) * sigma * math.sin(k * mu) * damp
    if name == "exp":  # E[e^z] = exp(mu + sigma^2 / 2)
        m = math.exp(mu + sigma**2 / 2)
        return torch.exp, m, sigma * m
    raise KeyError(name)


@pytest.mark.parametrize("name", ["square", "sin", "exp"])
@pytest.mark.parametrize("wrt", ["mu", "sigma"])
@pytest.mark.parametrize("kind", ["score", "pathwise"])
def test_unbiased(name, wrt, kind):
    mu, sigma = 0.3, 0.8
    f, g_mu, g_sigma = exact(name, mu, sigma)
    want = g_mu if wrt == "mu" else g_sigma
    g = torch.Generator().manual_seed(0)
    if kind == "score":
        e = est.score_function_estimates(f, mu, sigma, 200_000, wrt=wrt, generator=g)
    else:
        e = est.pathwise_estimates(f, mu, sigma, 200_000, wrt=wrt, generator=g)
    s = est.summarize(e)
    assert e.shape == (200_000,) and e.dtype == torch.float64
    assert abs(s.mean - want) < 5 * s.stderr + 1e-12, (s, want)


def test_pathwise_equals_derivative():
    """For f(z) = z^2 the pathwise estimate is exactly 2z (mu) and 2z*eps (sigma)."""
    eps = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    z = 0.3 + 0.8 * eps
    assert torch.allclose(est.pathwise_terms(lambda t: t**2, eps, 0.3, 0.8, "mu"), 2 * z)
    assert torch.allclose(est.pathwise_terms(lambda t: t**2, eps, 0.3, 0.8, "sigma"), 2 * z * eps)


def test_same_generator_same_samples():
    """Both estimators see the same z for the same seed (common random numbers)."""
    f = lambda z: z**2  # noqa: E731
    a = est.pathwise_estimates(f, 0.3, 0.8, 5, generator=torch.Generator().manual_seed(1))
    z = 0.3 + 0.8 * est.standard_normal(5, torch.Generator().manual_seed(1))
    assert torch.allclose(a, 2 * z)
    b = est.score_function_estimates(f, 0.3, 0.8, 5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(b, z**2 * (z - 0.3) / 0.8**2)


def test_score_has_mean_zero():
    g = torch.Generator().manual_seed(2)
    z = 1.0 + 2.0 * est.standard_normal(100_000, g)
    for wrt in ("mu", "sigma"):
        s = est.summarize(est.score(z, 1.0, 2.0, wrt))
        assert abs(s.mean) < 5 * s.stderr


def test_baseline_keeps_mean_and_cuts_variance():
    f = lambda z: z**2 + 10.0  # noqa: E731  a large constant offset makes the plain score estimator noisy
    plain = est.summarize(est.score_function_estimates(f, 0.3, 0.8, 100_000, generator=torch.Generator().manual_seed(3)))
    based = est.summarize(est.score_function_estimates(f, 0.3, 0.8, 100_000, baseline=10.0 + 0.3**2 + 0.8**2,
                                                       generator=torch.Generator().manual_seed(3)))
    assert abs(based.mean - 0.6) < 5 * based.stderr
    assert based.variance < plain.variance / 10


def test_variance_ordering():
    """Pathwise wins for a smooth f, the score function for a fast-oscillating one."""
    mu, sigma, n = 0.0, 1.0, 100_000
    for f, pathwise_wins in ((lambda z: z**2, True), (sin_k(10.0), False)):
        sf = est.summarize(est.score_function_estimates(f, mu, sigma, n, generator=torch.Generator().manual_seed(4)))
        pw = est.summarize(est.pathwise_estimates(f, mu, sigma, n, generator=torch.Generator().manual_seed(4)))
        assert (pw.variance < sf.variance) == pathwise_wins


def test_summarize():
    s = est.summarize(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert s.mean == pytest.approx(2.5)
    assert s.variance == pytest.approx(5 / 3)
    assert s.stderr == pytest.approx(math.sqrt(5 / 3 / 4))
    with pytest.raises(ValueError):
        est.summarize(torch.tensor([1.0]))


def test_errors():
    with pytest.raises(ValueError, match="sigma"):
        est.score_function_estimates(torch.sin, 0.0, 0.0, 10)
    with pytest.raises(ValueError, match="wrt"):
        est.pathwise_estimates(torch.sin, 0.0, 1.0, 10, wrt="logvar")
    with pytest.raises(ValueError, match="n"):
        est.standard_normal(0)
    with pytest.raises(ValueError, match="no gradient"):
        est.pathwise_estimates(lambda z: (z > 0).double(), 0.0, 1.0, 10)


# The closed-form variances notebook 3 quotes (mu = 0.5 or 0, sigma = 1).
def test_variance_formulas_square():
    mu = 0.5
    sf = est.score_function_estimates(lambda z: z**2, mu, 1.0, 400_000, generator=torch.Generator().manual_seed(7))
    pw = est.pathwise_estimates(lambda z: z**2, mu, 1.0, 400_000, generator=torch.Generator().manual_seed(7))
    assert est.summarize(pw).variance == pytest.approx(4.0, rel=0.02)
    assert est.summarize(sf).variance == pytest.approx(mu**4 + 14 * mu**2 + 15, rel=0.05)


@pytest.mark.parametrize("k", [0.5, 1.0, 3.0])
def test_variance_formulas_sin(k):
    var_pw = k**2 * (0.5 * (1 + math.exp(-2 * k**2)) - math.exp(-(k**2)))
    var_sf = 0.5 - 0.5 * (1 - 4 * k**2) * math.exp(-2 * k**2) - k**2 * math.exp(-(k**2))
    f = sin_k(k)
    sf = est.score_function_estimates(f, 0.0, 1.0, 400_000, generator=torch.Generator().manual_seed(8))
    pw = est.pathwise_estimates(f, 0.0, 1.0, 400_000, generator=torch.Generator().manual_seed(8))
    assert est.summarize(pw).variance == pytest.approx(var_pw, rel=0.03)
    assert est.summarize(sf).variance == pytest.approx(var_sf, rel=0.03)
