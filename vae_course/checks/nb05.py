"""Checks for notebook 5 (the full VAE): the reconstruction terms and the BCE floor of
grayscale targets. The capstone training-step check is in :mod:`.train_step`."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..losses import bernoulli_entropy, bernoulli_nll, gaussian_nll
from ..models import NUM_PIXELS
from . import engine
from .cases import image_cases, reconstruction_cases
from .engine import Variant


def check_bernoulli_nll(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(logits, x) -> (batch,)``: binary cross-entropy summed over pixels."""
    variants = [
        Variant("mean over pixels", lambda lg, x: bernoulli_nll(lg, x) / NUM_PIXELS,
                "sum over the 784 pixels (reduction='sum' per example), don't average them."),
        Variant("sigmoid applied twice",
                lambda lg, x: bernoulli_nll(torch.sigmoid(lg), x),
                "the decoder returns logits: use binary_cross_entropy_with_logits on them directly."),
        Variant("summed over the batch", lambda lg, x: bernoulli_nll(lg, x).sum(),
                "return one number per example, shape (batch,)."),
        Variant("sign error", lambda lg, x: -bernoulli_nll(lg, x),
                "a negative log-likelihood is positive: -log p(x|z) >= 0 for binary pixels."),
    ]
    return engine.run_check("bernoulli_nll", fn, bernoulli_nll, image_cases(), variants, check_grad=True)


def check_gaussian_nll(fn: Callable[[Tensor, Tensor], Tensor] | None, sigma: float = math.sqrt(0.5)) -> bool | None:
    """Check ``fn(x_hat, x) -> (batch,)``: ``-log N(x; x_hat, sigma^2 I)`` with the default sigma^2 = 1/2."""

    def reference(x_hat: Tensor, x: Tensor) -> Tensor:
        return gaussian_nll(x_hat, x, sigma)

    def d_const(x: Tensor) -> float:  # (D/2) log(2 pi sigma^2), D pixels per image
        return 0.5 * x[0].numel() * math.log(2 * math.pi * sigma**2)

    variants = [
        Variant("missing the constant", lambda xh, x: reference(xh, x) - d_const(x),
                "add (D/2) log(2 pi sigma^2): it does not change the gradients, but it makes the number a "
                "real negative log-likelihood."),
    ]
    if abs(sigma**2 - 0.5) > 1e-9:  # at sigma^2 = 1/2, 2 sigma^2 = 1 and this mistake changes nothing
        variants.append(Variant("missing 1/(2 sigma^2)", lambda xh, x: (x - xh).pow(2).flatten(1).sum(1) + d_const(x),
                                "divide the squared error by 2 sigma^2."))
    return engine.run_check("gaussian_nll", fn, reference, reconstruction_cases(), variants, check_grad=True)


def entropy_cases() -> list[tuple[Tensor]]:
    """Grayscale targets with exact 0s and 1s (like MNIST's background and strokes), and binary ones."""
    g = torch.Generator().manual_seed(5)
    gray = torch.rand(3, 1, 28, 28, generator=g)
    mixed = torch.rand(4, 1, 28, 28, generator=g)
    mixed[mixed < 0.5] = 0.0  # background pixels: exactly 0, where a naive p * log(p) gives NaN
    mixed[mixed > 0.9] = 1.0
    binary = torch.bernoulli(torch.full((2, 1, 28, 28), 0.2), generator=g)
    return [(gray,), (mixed,), (binary,)]


def check_bernoulli_entropy(fn: Callable[[Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(x) -> (batch,)``: the minimum achievable BCE for targets ``x`` in [0, 1],
    i.e. the entropy ``sum_i H(x_i)`` in nats, with ``0 log 0 = 0``."""

    def naive(x: Tensor) -> Tensor:
        return -(x * torch.log(x) + (1 - x) * torch.log(1 - x)).flatten(1).sum(1)

    ref = bernoulli_entropy
    variants = [
        Variant("0 log 0 gives NaN", naive,
                "pixels that are exactly 0 or 1 give 0 * log(0) = NaN; use torch.xlogy(x, x), which is 0 there "
                "(a pixel that is surely 0 or surely 1 has no uncertainty)."),
        Variant("mean over pixels", lambda x: ref(x) / NUM_PIXELS, "sum over the 784 pixels, don't average them."),
        Variant("bits instead of nats", lambda x: ref(x) / math.log(2),
                "use the natural logarithm (torch.log): the course's losses are in nats."),
        Variant("sign error", lambda x: -ref(x), "an entropy is >= 0: H(p) = -p log p - (1 - p) log(1 - p)."),
        Variant("only the p log p term", lambda x: -torch.xlogy(x, x).flatten(1).sum(1),
                "each pixel is a coin with two outcomes: add the (1 - p) log(1 - p) term too."),
        Variant("summed over the batch", lambda x: ref(x).sum(), "return one number per image, shape (batch,)."),
    ]
    return engine.run_check("bernoulli_entropy", fn, ref, entropy_cases(), variants)
