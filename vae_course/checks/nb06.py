"""Checks for notebook 6 (the convolutional VAE on a GPU): convolution output sizes and
the importance-weighted log-likelihood."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..losses import iwae_log_likelihood
from ..models import conv2d_output_size
from . import engine
from .engine import Variant


def check_conv_output_size(fn: Callable[[int, int, int, int], int] | None) -> bool | None:
    """Check ``fn(size, kernel, stride, padding) -> int``: the output size of a ``Conv2d``."""
    cases = [(28, 4, 2, 1), (14, 4, 2, 1), (28, 3, 1, 1), (28, 5, 2, 0), (7, 3, 2, 0), (32, 5, 3, 2)]
    variants = [
        Variant("no rounding down", lambda n, k, s, p: (n + 2 * p - k) / s + 1,
                "a kernel cannot stop half-way: round the division down (use // in Python)."),
        Variant("forgot the + 1", lambda n, k, s, p: conv2d_output_size(n, k, s, p) - 1,
                "count the first position too: floor((n + 2p - k) / s) + 1."),
        Variant("padding on one side only", lambda n, k, s, p: (n + p - k) // s + 1,
                "padding is added on both sides: n + 2 * padding."),
        Variant("divided the size by the stride first", lambda n, k, s, p: n // s + 2 * p - k + 1,
                "subtract the kernel and add the padding before dividing by the stride."),
    ]
    return engine.run_check("conv2d_output_size", fn, conv2d_output_size, cases, variants, rtol=0, atol=1e-9)


def check_iwae(fn: Callable[[Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(log_weights) -> (batch,)``: logsumexp over K minus log K."""
    g = torch.Generator().manual_seed(4)
    cases = [(torch.randn(3, k, generator=g) * 5 - 100,) for k in (1, 10, 50)]
    variants = [
        Variant("forgot - log K", lambda lw: iwae_log_likelihood(lw) + math.log(lw.shape[1]),
                "subtract log K: you want the log of the *mean* of the weights."),
        Variant("mean of log-weights", lambda lw: lw.mean(1),
                "that is the ELBO (K = 1 bound); average the weights themselves, in log-space: logsumexp - log K."),
        Variant("naive exp / log", lambda lw: torch.log(torch.exp(lw).mean(1)),
                "exp(-100) underflows to 0: use torch.logsumexp, which subtracts the maximum first."),
    ]
    return engine.run_check("iwae_log_likelihood", fn, iwae_log_likelihood, cases, variants)


def iwae_curve(log_w: Tensor, ks: list[int]) -> Tensor:
    """The reference answer of notebook 6's exercise: ``(len(ks),)`` estimates ``-L_K``
    (nats), each the mean over the ``n // K`` groups of ``K`` weights that every row of
    ``log_w`` ``(batch, n)`` makes (``L_K`` from :func:`vae_course.losses.iwae_log_likelihood`)."""
    curve = []
    for k in ks:
        groups = log_w[:, : (log_w.shape[1] // k) * k].reshape(-1, k)  # every row cut into n // K groups of K
        curve.append(-iwae_log_likelihood(groups).mean())              # -L_K of each group, averaged
    return torch.stack(curve)


def check_iwae_curve(fn: Callable[[Tensor, list[int]], Tensor] | None) -> bool | None:
    """Check ``fn(log_w, ks) -> (len(ks),)``: ``-L_K`` for each K, averaged over groups."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(2, 60, generator=g) * 3 - 100, [1, 3, 10, 60]),
             (torch.randn(3, 50, generator=g) * 5 - 80, [1, 7, 50])]
    variants = [
        Variant("the mean of log w", lambda lw, ks: torch.stack([-lw.mean()] * len(ks)),
                "that is the ELBO for every K: take logsumexp over each group of K, then subtract log K."),
        Variant("sign", lambda lw, ks: -iwae_curve(lw, ks), "return -L_K (a positive NLL estimate), not L_K."),
    ]
    return engine.run_check("iwae_curve", fn, iwae_curve, cases, variants)
