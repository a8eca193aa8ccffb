"""Checks for notebook 8 (beyond the vanilla VAE): active units and the free-bits KL."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..diagnostics import active_units
from ..losses import free_bits_kl, kl_per_dimension
from . import engine
from .engine import Variant


def active_unit_cases() -> list[tuple[Tensor]]:
    """Posterior means ``(n, latent_dim)`` whose dimensions have variances far from
    the 0.01 threshold: clearly active (~1), clearly dead (~1e-6) and in between
    (~0.0025, whose standard deviation 0.05 *is* above 0.01)."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for n, scales in ((200, [1.0, 0.001, 0.05, 2.0, 0.0]), (50, [0.05] * 3 + [0.5] * 2), (300, [0.3] * 7)):
        mu = torch.randn(n, len(scales), generator=g) * torch.tensor(scales) + 0.2
        cases.append((mu,))
    return cases


def active_unit_count(mu: Tensor) -> Tensor:
    """The package's :func:`vae_course.diagnostics.active_units` as a 0-d float tensor (what the check compares)."""
    return torch.tensor(float(active_units(mu)))


def check_active_units(fn: Callable[[Tensor], Any] | None) -> bool | None:
    """Check ``fn(mu) -> int``: how many columns of ``mu`` ``(n, latent_dim)`` have a
    variance over the examples above 0.01 (Burda et al.'s active units)."""
    variants = [
        Variant("standard deviation instead of variance", lambda mu: (mu.std(dim=0) > 0.01).sum().float(),
                "the criterion is on the variance Cov_x(E[z_u]) = mu[:, u].var(), not the standard deviation."),
        Variant("mean instead of variance", lambda mu: (mu.mean(dim=0).abs() > 0.01).sum().float(),
                "a unit is active when its posterior mean *changes* with x: use the variance over examples."),
        Variant("variance over the wrong axis", lambda mu: (mu.var(dim=1) > 0.01).sum().float(),
                "take the variance over the examples (dim=0), one number per latent dimension."),
    ]
    return engine.run_check("active_units", fn, active_unit_count, active_unit_cases(), variants)


def free_bits_cases() -> list[tuple[Tensor, Tensor, float]]:
    """``(mu, logvar, free_bits)``: dimensions from almost collapsed to clearly used."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for batch, dim, lam in ((16, 6, 0.5), (9, 4, 0.25), (32, 10, 0.0)):
        mu = torch.randn(batch, dim, generator=g) * torch.linspace(0.05, 2.0, dim)
        logvar = torch.randn(batch, dim, generator=g) * 0.3 - torch.linspace(0.0, 2.0, dim)
        cases.append((mu, logvar, lam))
    # An almost-collapsed posterior whose *total* KL is under the floor too, so that
    # "clamped the total" and "no clamp" give different numbers.
    cases.append((torch.randn(8, 3, generator=g) * 0.01, torch.randn(8, 3, generator=g) * 0.01, 1.0))
    return cases


def check_free_bits(fn: Callable[[Tensor, Tensor, float], Tensor] | None) -> bool | None:
    """Check ``fn(mu, logvar, free_bits) -> scalar``: the minibatch-average KL of each
    dimension clamped below at ``free_bits`` nats, summed over dimensions."""
    kl_dim = kl_per_dimension
    variants = [
        Variant("clamped per example", lambda m, lv, lam: kl_dim(m, lv).clamp(min=lam).sum(-1).mean(),
                "average each dimension's KL over the minibatch first, then clamp: free bits act on the "
                "minibatch-average KL per dimension."),
        Variant("clamp from above", lambda m, lv, lam: kl_dim(m, lv).mean(0).clamp(max=lam).sum(),
                "the floor is a *minimum*: clamp(min=free_bits), so dimensions below it stop being pushed down."),
        Variant("no clamp", lambda m, lv, lam: kl_dim(m, lv).mean(0).sum(),
                "clamp each dimension's average KL below at free_bits before summing."),
        Variant("clamped the total", lambda m, lv, lam: kl_dim(m, lv).sum(-1).mean().clamp(min=lam),
                "the floor applies to each latent dimension separately, not to the total KL."),
    ]
    return engine.run_check("free_bits_kl", fn, free_bits_kl, free_bits_cases(), variants, check_grad=True)
