"""Checks for notebook 7 (the latent space): spherical interpolation and the aggregate
posterior's density ``log q(z)``."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..interpolation import slerp
from ..losses import aggregate_posterior_log_density
from . import engine
from .engine import Variant


def check_slerp(fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(z0, z1, t) -> (steps, latent_dim)``: spherical interpolation (see ``interpolation.slerp``)."""
    g = torch.Generator().manual_seed(5)
    cases = [(torch.randn(d, generator=g), torch.randn(d, generator=g), torch.linspace(0, 1, steps))
             for d, steps in ((2, 5), (20, 7), (50, 3))]

    def unnormalised_angle(z0, z1, t):
        omega = torch.arccos(torch.clamp(torch.dot(z0, z1), -1.0, 1.0))
        t = t[:, None]
        return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)

    variants = [
        Variant("linear interpolation", lambda z0, z1, t: torch.lerp(z0, z1, t[:, None]),
                "that is lerp, a straight line: slerp weights z0 and z1 by sin((1-t) omega) / sin(omega) "
                "and sin(t omega) / sin(omega)."),
        Variant("angle of the unnormalised vectors", unnormalised_angle,
                "omega is the angle between the directions: arccos of the dot product of z0/|z0| and z1/|z1|."),
        Variant("t reversed", lambda z0, z1, t: slerp(z1, z0, t),
                "at t = 0 the path must start at z0 and at t = 1 end at z1."),
    ]
    return engine.run_check("slerp", fn, slerp, cases, variants, check_grad=True)


def check_aggregate_posterior(fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(z, mu, logvar) -> (m,)``: ``log q(z)`` of the mixture of the encoder's Gaussians."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for m, n, d in ((5, 3, 2), (4, 50, 2), (3, 10, 6)):
        cases.append((torch.randn(m, d, generator=g) * 2, torch.randn(n, d, generator=g),
                      torch.randn(n, d, generator=g) * 0.5 - 1))
    ref = aggregate_posterior_log_density

    def mean_of_logs(z, mu, lv):
        return torch.stack([ref(z, mu[i:i + 1], lv[i:i + 1]) for i in range(len(mu))]).mean(0)

    variants = [
        Variant("forgot - log N", lambda z, mu, lv: ref(z, mu, lv) + math.log(mu.shape[0]),
                "q(z) is the *average* of the N Gaussian densities: subtract log N after the logsumexp."),
        Variant("averaged the log-densities", mean_of_logs,
                "average the densities themselves (logsumexp - log N), not their logarithms."),
        Variant("standard deviation used as variance", lambda z, mu, lv: ref(z, mu, lv / 2),
                "logvar is log sigma^2: the variance is exp(logvar), not exp(logvar / 2)."),
    ]
    return engine.run_check("aggregate posterior log q(z)", fn, ref, cases, variants, check_grad=True)
