"""Checks for notebook 3 (the reparameterization trick): ``reparameterize`` and the
score-function estimator it is compared with."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..estimators import score, score_function_terms
from ..losses import reparameterize as package_reparameterize
from . import engine
from .cases import mu_logvar_cases
from .engine import Variant


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """The package's :func:`vae_course.losses.reparameterize` with torch's global generator,
    whose noise equals ``torch.randn_like(mu)``'s after the same ``torch.manual_seed``."""
    return package_reparameterize(mu, logvar)


def check_reparameterize(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(mu, logvar) -> z`` (the reparameterization trick), with ``torch.randn_like`` noise."""
    variants = [
        Variant("variance instead of standard deviation", lambda m, lv: m + torch.exp(lv) * torch.randn_like(m),
                "sigma = exp(logvar / 2); exp(logvar) is the variance sigma^2."),
        Variant("log-variance used as sigma", lambda m, lv: m + lv * torch.randn_like(m),
                "logvar is log sigma^2, not sigma: use torch.exp(0.5 * logvar)."),
        Variant("no noise", lambda m, lv: m + torch.exp(0.5 * lv),
                "multiply sigma by eps = torch.randn_like(mu): without noise z is not a sample."),
    ]
    return engine.run_check("reparameterize", fn, reparameterize, mu_logvar_cases(), variants, check_grad=True, seed=0)


def score_function_cases() -> list[tuple[Callable[[Tensor], Tensor], Tensor, float, float]]:
    """``(f, z, mu, sigma)``: three functions and ``(n,)`` float64 samples ``z ~ N(mu, sigma^2)``."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for f, mu, sigma, n in ((torch.sin, 0.3, 0.8, 6), (lambda t: t**2, -1.0, 2.0, 5), (torch.exp, 0.5, 0.3, 4)):
        z = mu + sigma * torch.randn(n, dtype=torch.float64, generator=g)
        cases.append((f, z, mu, sigma))
    return cases


def check_score_function(fn: Callable[..., Tensor] | None) -> bool | None:
    """Check ``fn(f, z, mu, sigma) -> (n,)``: per-sample score-function estimates of
    ``d/dmu E_{z ~ N(mu, sigma^2)}[f(z)]``, i.e. ``f(z) * (z - mu) / sigma^2`` (notebook 3).

    ``z`` is a ``(n,)`` float64 tensor of samples, ``mu`` and ``sigma`` are floats.
    """

    def reference(f, z, mu, sigma):
        return score_function_terms(f, z, mu, sigma, "mu")

    variants = [
        Variant("divided by sigma, not sigma^2", lambda f, z, m, s: f(z) * (z - m) / s,
                "d/dmu log N(z; mu, sigma^2) = (z - mu) / sigma^2: divide by the variance."),
        Variant("sign error", lambda f, z, m, s: -reference(f, z, m, s),
                "d/dmu of -(z - mu)^2 / (2 sigma^2) is +(z - mu) / sigma^2."),
        Variant("f(z) forgotten", lambda f, z, m, s: score(z, m, s, "mu"),
                "multiply the score by f(z): the score alone has mean 0 whatever f is."),
        Variant("mu not subtracted", lambda f, z, m, s: f(z) * z / s**2,
                "the score is (z - mu) / sigma^2: measure z from the mean."),
        Variant("averaged", lambda f, z, m, s: reference(f, z, m, s).mean(),
                "return one estimate per sample, shape (n,): we take the mean (and the variance) afterwards."),
    ]
    return engine.run_check("score-function estimator", fn, reference, score_function_cases(), variants)
