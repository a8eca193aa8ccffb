"""Checks for notebook 2 (latent variables and the ELBO): a Gaussian log-density and
the closed-form ELBO of the linear-Gaussian toy model."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..losses import kl_divergence
from ..toy_models import LinearGaussian, diag_gaussian_log_density
from . import engine
from .cases import mu_logvar_cases
from .engine import Variant


def check_gaussian_log_density(fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(z, mu, logvar) -> (batch,)``: ``log N(z; mu, diag(exp(logvar)))`` in nats,
    summed over the ``(batch, dim)`` inputs' last axis."""
    reference = diag_gaussian_log_density
    cases = []
    g = torch.Generator().manual_seed(6)
    for mu, logvar in mu_logvar_cases():
        cases.append((mu + torch.randn(mu.shape, generator=g) * logvar.mul(0.5).exp(), mu, logvar))
    log2pi = math.log(2 * math.pi)
    variants = [
        Variant("missing the log(2 pi) constant", lambda z, m, lv: reference(z, m, lv) + 0.5 * log2pi * z.shape[-1],
                "each dimension contributes -1/2 log(2 pi): the density must integrate to 1."),
        Variant("divided by sigma instead of sigma^2",
                lambda z, m, lv: -0.5 * (log2pi + lv + (z - m).pow(2) / lv.mul(0.5).exp()).sum(-1),
                "the squared distance is divided by the variance sigma^2 = exp(logvar), not by sigma."),
        Variant("missing the log-variance term", lambda z, m, lv: -0.5 * (log2pi + (z - m).pow(2) / lv.exp()).sum(-1),
                "add -1/2 log sigma^2 per dimension (the normaliser 1/sqrt(2 pi sigma^2))."),
        Variant("negative log-density", lambda z, m, lv: -reference(z, m, lv),
                "return the log-density itself (usually negative for spread-out Gaussians), not its negative."),
        Variant("mean over dimensions", lambda z, m, lv: reference(z, m, lv) / z.shape[-1],
                "independent dimensions multiply densities, so their log-densities add: sum over dim=-1."),
        Variant("missing 1/2", lambda z, m, lv: 2 * reference(z, m, lv), "don't forget the factor -1/2 in front."),
    ]
    return engine.run_check("gaussian_log_density", fn, reference, cases, variants, check_grad=True)


def toy_elbo_cases() -> list[tuple[Any, Tensor, Tensor, Tensor]]:
    """``(model, x, q_mu, q_logvar)`` for three random linear-Gaussian models, in float64."""
    cases = []
    g = torch.Generator().manual_seed(7)
    for seed, (d, k, sigma, batch) in enumerate(((5, 2, 0.5, 4), (3, 1, 1.3, 2), (8, 3, 0.2, 3))):
        model = LinearGaussian.random(d, k, sigma, seed=seed)
        x, _ = model.sample(batch, generator=g)
        q_mu = torch.randn(batch, k, generator=g, dtype=torch.float64)
        q_logvar = torch.randn(batch, k, generator=g, dtype=torch.float64) - 1
        cases.append((model, x, q_mu, q_logvar))
    return cases


def _diag_cov(logvar: Tensor) -> Tensor:
    """``(batch, k)`` log-variances as ``(batch, k, k)`` diagonal covariances."""
    return torch.diag_embed(logvar.exp())


def toy_elbo(model: LinearGaussian, x: Tensor, q_mu: Tensor, q_logvar: Tensor) -> Tensor:
    """The package's closed-form ELBO (:meth:`LinearGaussian.elbo`) for a diagonal ``q``, ``(batch,)`` nats."""
    return model.elbo(x, q_mu, _diag_cov(q_logvar))


def _sigma_as_variance(model: LinearGaussian, x: Tensor, m: Tensor, lv: Tensor) -> Tensor:
    """The ELBO with sigma written where sigma^2 belongs."""
    sq = (x - m @ model.W.T - model.b).pow(2).sum(-1) + (lv.exp() * model.W.pow(2).sum(0)).sum(-1)
    recon = -0.5 * (sq / model.sigma + model.d * math.log(2 * math.pi * model.sigma))
    return recon - kl_divergence(m, lv)


def check_toy_elbo(fn: Callable[..., Tensor] | None) -> bool | None:
    """Check ``fn(model, x, q_mu, q_logvar) -> (batch,)``: the closed-form ELBO of the
    linear-Gaussian toy model (:class:`vae_course.toy_models.LinearGaussian`) for a
    diagonal ``q(z) = N(q_mu, diag(exp(q_logvar)))``, in nats.

    ``x`` is ``(batch, d)``; ``q_mu`` and ``q_logvar`` are ``(batch, k)``.
    """

    def recon(model, x, m, lv):
        return model.expected_log_likelihood(x, m, _diag_cov(lv))

    variants = [
        Variant("spread of q forgotten", lambda mo, x, m, lv: mo.log_likelihood(x, m) - kl_divergence(m, lv),
                "E_q[||x - Wz - b||^2] = ||x - Wm - b||^2 + tr(W S W^T): averaging over z ~ q adds the trace term."),
        Variant("KL forgotten", recon,
                "subtract KL(q || p(z)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar)) from the reconstruction term."),
        Variant("KL added", lambda mo, x, m, lv: recon(mo, x, m, lv) + kl_divergence(m, lv),
                "the ELBO is E_q[log p(x|z)] *minus* KL(q || p(z))."),
        Variant("sigma used as the variance", _sigma_as_variance,
                "the likelihood's variance is sigma^2: divide by 2 sigma^2 and use log(2 pi sigma^2)."),
    ]
    return engine.run_check("toy_elbo", fn, toy_elbo, toy_elbo_cases(), variants, check_grad=True)
