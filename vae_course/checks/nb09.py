"""Checks for notebook 9 (applications): the AUROC of anomaly scores and bits per dimension."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..applications import auroc
from ..diagnostics import nats_to_bits
from ..models import NUM_PIXELS
from . import engine
from .engine import Variant


def check_auroc(fn: Callable[[Tensor, Tensor], Any] | None) -> bool | None:
    """Check ``fn(normal_scores, anomalous_scores) -> float``: the probability that an
    anomalous score is higher than a normal one, ties counting one half (the AUROC)."""
    g = torch.Generator().manual_seed(7)
    cases = [
        (torch.tensor([0.0, 1.0, 2.0, 2.0]), torch.tensor([2.0, 3.0, 1.0])),  # ties
        (torch.randn(30, generator=g), torch.randn(20, generator=g) + 1.0),
        (torch.randint(0, 4, (25,), generator=g).float(), torch.randint(1, 6, (15,), generator=g).float()),
    ]

    def reference(a: Tensor, b: Tensor) -> Tensor:
        return torch.tensor(auroc(a, b))

    variants = [
        Variant("reversed", lambda a, b: torch.tensor(1 - auroc(a, b)),
                "count the pairs where the *anomalous* score is higher than the normal one."),
        Variant("ties ignored", lambda a, b: (b[:, None] > a[None, :]).double().mean(),
                "pairs with equal scores (ties) count one half."),
        Variant("ties counted fully", lambda a, b: (b[:, None] >= a[None, :]).double().mean(),
                "pairs with equal scores (ties) count one half, not one."),
    ]
    return engine.run_check("auroc", fn, reference, cases, variants, rtol=1e-6, atol=1e-6)


def bits_per_dim(nll: Tensor) -> Tensor:
    """Negative log-likelihoods ``(batch,)`` in nats per 28x28 image as bits per pixel,
    with the package's :func:`vae_course.diagnostics.nats_to_bits`."""
    return nats_to_bits(nll) / NUM_PIXELS


def check_bits_per_dim(fn: Callable[[Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(nll_nats) -> bits_per_dim``: negative log-likelihoods ``(batch,)`` in
    nats per 28×28 image, converted to bits per pixel (784 pixels)."""
    g = torch.Generator().manual_seed(8)
    cases = [(torch.rand(5, generator=g) * 100 + 50,), (torch.tensor([0.0, 543.5]),)]
    variants = [
        Variant("nats, not bits", lambda nll: nll / NUM_PIXELS,
                "1 bit = ln 2 nats: divide the nats by ln 2 (math.log(2)) to get bits."),
        Variant("per image, not per pixel", nats_to_bits,
                "divide by the number of pixels, 784, as well."),
        Variant("multiplied by ln 2", lambda nll: nll * math.log(2) / NUM_PIXELS,
                "bits = nats / ln 2 (there are fewer nats than bits in the same amount of information)."),
    ]
    return engine.run_check("bits_per_dim", fn, bits_per_dim, cases, variants)
