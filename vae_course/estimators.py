"""Two ways to estimate a gradient of an expectation (notebook 3).

The question: ``g = d/dtheta E_{z ~ N(mu, sigma^2)}[f(z)]`` with ``theta`` being
``mu`` or ``sigma``. Both estimators below are *unbiased*; they differ in their
variance, which is what makes one of them train a VAE well.

* **Score function** (REINFORCE, likelihood ratio): ``f(z) * d/dtheta log q(z)``.
  Needs only the values ``f(z)``, never its derivative, so ``f`` may be a
  step function or a black box; its variance is often large.
* **Pathwise** (reparameterization): write ``z = mu + sigma * eps`` with
  ``eps ~ N(0, 1)``, then ``g = E[f'(z) * dz/dtheta]``. Needs a differentiable
  ``f``; usually, not always, the lower variance.

Every function returns **one estimate per sample**, shape ``(n,)``: the estimate
from ``n`` samples is their mean, and their standard deviation divided by
``sqrt(n)`` is its standard error (see :func:`summarize`). Everything works in
float64 so that the estimators' own noise, not rounding, is what you measure.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor

Fn = Callable[[Tensor], Tensor]
_PARAMS = ("mu", "sigma")


def _check(mu: float, sigma: float, wrt: str) -> None:
    if not math.isfinite(float(mu)):
        raise ValueError(f"mu: must be a finite number, got {mu!r}")
    if not float(sigma) > 0 or not math.isfinite(float(sigma)):
        raise ValueError(f"sigma: must be a positive number, got {sigma!r}")
    if wrt not in _PARAMS:
        raise ValueError(f"wrt: must be 'mu' or 'sigma', got {wrt!r}")


def standard_normal(n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws of ``eps ~ N(0, 1)`` in float64, shape ``(n,)``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    return torch.randn(n, dtype=torch.float64, generator=generator)


def score(z: Tensor, mu: float, sigma: float, wrt: str = "mu") -> Tensor:
    """The score ``d/dtheta log N(z; mu, sigma^2)`` at each sample, shape of ``z``.

    ``wrt="mu"``: ``(z - mu) / sigma^2``;
    ``wrt="sigma"``: ``((z - mu)^2 - sigma^2) / sigma^3``. Both have mean 0
    under ``z ~ N(mu, sigma^2)``, which is why the estimator is unbiased.
    """
    _check(mu, sigma, wrt)
    if wrt == "mu":
        return (z - mu) / sigma**2
    return ((z - mu) ** 2 - sigma**2) / sigma**3


def score_function_terms(f: Fn, z: Tensor, mu: float, sigma: float, wrt: str = "mu",
                         baseline: float = 0.0) -> Tensor:
    """Per-sample score-function estimates ``(f(z) - b) * d/dtheta log q(z)``.

    Args:
        f: maps ``(n,)`` to ``(n,)`` elementwise (only its values are used).
        z: ``(n,)`` samples from ``N(mu, sigma^2)``.
        mu, sigma: the distribution's parameters (``sigma > 0``).
        wrt: ``"mu"`` or ``"sigma"``, the parameter to differentiate by.
        baseline: a constant ``b`` subtracted from ``f``; any constant keeps the
            estimator unbiased (the score has mean 0) and a good one (close to
            ``E[f]``) cuts its variance.
    Returns:
        ``(n,)`` estimates of ``d/dtheta E[f(z)]`` (units of ``f`` per unit of ``theta``).
    """
    return (f(z) - baseline) * score(z, mu, sigma, wrt)


def pathwise_terms(f: Fn, eps: Tensor, mu: float, sigma: float, wrt: str = "mu") -> Tensor:
    """Per-sample pathwise estimates ``d/dtheta f(mu + sigma * eps)``, by autograd.

    ``mu`` and ``sigma`` become tensors with ``requires_grad=True`` (one copy
    per sample); ``z = mu + sigma * eps`` is a differentiable function of them,
    so autograd gives ``f'(z) * 1`` (for ``mu``) or ``f'(z) * eps`` (for ``sigma``).
    Raises ``ValueError`` when ``f`` has no gradient (a step function, ``.detach()``,
    ``.item()``, a ``sample()``): then only the score function applies.

    Args:
        f: a differentiable elementwise function ``(n,) -> (n,)``.
        eps: ``(n,)`` standard-normal noise.
        mu, sigma, wrt: as in :func:`score_function_terms`.
    Returns:
        ``(n,)`` estimates, detached.
    """
    _check(mu, sigma, wrt)
    eps = eps.detach().double()
    # One copy of (mu, sigma) per sample, so autograd hands back one gradient per
    # sample: sample i depends only on its own copy, through z_i = mu_i + sigma_i * eps_i.
    mus = torch.full_like(eps, float(mu)).requires_grad_(True)
    sigmas = torch.full_like(eps, float(sigma)).requires_grad_(True)
    z = mus + sigmas * eps  # the reparameterization: the noise is an input, not a step
    out = f(z)
    if not out.requires_grad:
        raise ValueError("f: its output has no gradient (a step, .detach(), .item() or .sample() inside?); "
                         "the pathwise estimator needs a differentiable f")
    grad_mu, grad_sigma = torch.autograd.grad(out.sum(), (mus, sigmas))
    return (grad_mu if wrt == "mu" else grad_sigma).detach()


def score_function_estimates(f: Fn, mu: float, sigma: float, n: int, wrt: str = "mu",
                             baseline: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """``n`` score-function estimates, shape ``(n,)``, from ``z = mu + sigma * eps``."""
    _check(mu, sigma, wrt)
    z = mu + sigma * standard_normal(n, generator)
    return score_function_terms(f, z, mu, sigma, wrt, baseline)


def pathwise_estimates(f: Fn, mu: float, sigma: float, n: int, wrt: str = "mu",
                       generator: torch.Generator | None = None) -> Tensor:
    """``n`` pathwise (reparameterization) estimates, shape ``(n,)``.

    With the same ``generator`` state, :func:`score_function_estimates` uses the
    very same ``z`` samples, so the two can be compared sample by sample.
    """
    _check(mu, sigma, wrt)
    return pathwise_terms(f, standard_normal(n, generator), mu, sigma, wrt)


class Summary(NamedTuple):
    """Mean, standard error of the mean, and per-sample variance of estimates."""

    mean: float
    stderr: float
    variance: float


def summarize(estimates: Tensor) -> Summary:
    """Summarise ``(n,)`` per-sample estimates (``n >= 2``).

    ``mean`` is the ``n``-sample estimate; ``variance`` is the unbiased sample
    variance of a *single* estimate; ``stderr = sqrt(variance / n)``.
    """
    if not isinstance(estimates, Tensor) or estimates.dim() != 1 or len(estimates) < 2:
        raise ValueError("estimates: expected a 1-D tensor with at least 2 values")
    e = estimates.detach().double()
    var = e.var(unbiased=True).item()
    return Summary(e.mean().item(), math.sqrt(var / len(e)), var)
