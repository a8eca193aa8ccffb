"""Fixed test inputs shared by the checks of several notebooks.

Each function builds its tensors from its own seeded generator, so a check sees
the same inputs on every run and on every machine.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..models import IMAGE_SHAPE


def mu_logvar_cases() -> list[tuple[Tensor, Tensor]]:
    """``(mu, logvar)`` pairs, each ``(batch, latent_dim)``: batches of different sizes,
    zero, negative and large values, and ``q = prior`` (whose KL must be 0)."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, dim in ((4, 3), (7, 20), (1, 1)):
        mu = torch.randn(batch, dim, generator=g) * 1.5
        logvar = torch.randn(batch, dim, generator=g) * 1.2
        cases.append((mu, logvar))
    cases.append((torch.zeros(2, 5), torch.zeros(2, 5)))
    return cases


def image_cases() -> list[tuple[Tensor, Tensor]]:
    """``(logits, x)`` pairs of ``(batch, 1, 28, 28)`` images: grayscale targets, then binary ones."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for batch in (3, 5):
        logits = torch.randn(batch, *IMAGE_SHAPE, generator=g) * 3
        x = torch.rand(batch, *IMAGE_SHAPE, generator=g)
        cases.append((logits, x))
    x_bin = torch.bernoulli(torch.full((4, *IMAGE_SHAPE), 0.3), generator=g)
    cases.append((torch.randn(4, *IMAGE_SHAPE, generator=g), x_bin))
    return cases


def reconstruction_cases() -> list[tuple[Tensor, Tensor]]:
    """``(x_hat, x)`` pairs: reconstructions as probabilities in (0, 1) and grayscale / binary targets."""
    return [(torch.sigmoid(lg), x) for lg, x in image_cases()]
