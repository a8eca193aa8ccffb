"""Is the encoder's sigma a measure of uncertainty? Clean vs corrupted vs ambiguous digits.

The seed guide says a VAE "captures uncertainty". The encoder does output a
spread, the standard deviation ``sigma(x)`` of ``q(z|x)``, and its KL to the
prior says how much the code pins ``x`` down. Here both are measured on the
same images made harder to read: pixel noise, a covered patch, and two
different digits drawn on top of each other. Whether sigma grows with the
difficulty is an empirical question, answered by the numbers (an encoder never
trained on corrupted images has no reason to know it is unsure).

Dimensions that are *inactive* on clean images (``sigma ≈ 1`` for every image,
:mod:`vae_course.diagnostics`) would dilute any average, so sigma is averaged
over the active dimensions only. Values are per image; KL and -ELBO in nats.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .applications import flip_pixels, occlude
from .diagnostics import ACTIVE_THRESHOLD, activity, posterior_params
from .evaluate import per_example_terms
from .losses import kl_divergence

__all__ = ["overlay_pairs", "corrupted_versions", "posterior_spread", "uncertainty_table"]


def overlay_pairs(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Ambiguous images: each image drawn on top of the next one of a *different* class.

    Pixel-wise maximum of image ``i`` and the first later image (cyclically)
    whose label differs: two digits written over each other.

    Args:
        x: ``(n, 1, 28, 28)`` in [0, 1]; y: ``(n,)`` labels (at least two classes).
    Returns:
        ``(overlays (n, 1, 28, 28), partner_index (n,))``.
    """
    if len(set(y.tolist())) < 2:
        raise ValueError("y: overlays need images of at least two different classes")
    partner = torch.empty(len(y), dtype=torch.long)
    for i in range(len(y)):
        j = (i + 1) % len(y)
        while y[j] == y[i]:
            j = (j + 1) % len(y)
        partner[i] = j
    return torch.maximum(x, x[partner]), partner


def corrupted_versions(x: Tensor, y: Tensor, flip: float = 0.1, patch: int = 14,
                       seed: int = 0) -> dict[str, Tensor]:
    """The same images four ways: ``clean``, ``noisy`` (each pixel flipped ``p -> 1 - p``
    with probability ``flip``), ``occluded`` (a black ``patch x patch`` square in the
    centre) and ``overlaid`` (:func:`overlay_pairs`). Each ``(n, 1, 28, 28)``."""
    g = torch.Generator().manual_seed(seed)
    corner = (28 - patch) // 2
    return {"clean": x, "noisy": flip_pixels(x, flip, generator=g), "occluded": occlude(x, corner, corner, patch),
            "overlaid": overlay_pairs(x, y)[0]}


def posterior_spread(model: nn.Module, x: Tensor, active: Tensor | None = None) -> dict[str, Tensor]:
    """Per image: ``std``, the mean posterior standard deviation over the ``active``
    dimensions (all if ``None``), ``(n,)``; ``kl``, ``KL(q(z|x) || p(z))``, ``(n,)`` nats."""
    mu, logvar = posterior_params(model, x)
    std = logvar.mul(0.5).exp()
    if active is not None:
        if active.dtype != torch.bool or active.shape != (mu.shape[1],) or not active.any():
            raise ValueError(f"active: expected a boolean mask of {mu.shape[1]} dimensions with at least one True")
        std = std[:, active]
    return {"std": std.mean(1), "kl": kl_divergence(mu, logvar)}


def uncertainty_table(model: nn.Module, images: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Mean posterior spread, KL and -ELBO per condition, with standard errors.

    Args:
        images: ``{condition: (n, 1, 28, 28)}`` (e.g. :func:`corrupted_versions`);
            the first entry is the reference (clean) set that decides which
            dimensions are active.
    Returns:
        ``{condition: {"std", "std_se", "kl", "kl_se", "neg_elbo", "neg_elbo_se"}}``,
        plus ``"active_dims"`` (an int) in every row.
    """
    if not images:
        raise ValueError("images: give at least one condition, the clean images first")
    reference = next(iter(images.values()))
    mu, _ = posterior_params(model, reference)
    active = activity(mu) > ACTIVE_THRESHOLD
    if not active.any():  # a collapsed model: fall back to every dimension
        active = torch.ones_like(active)
    table = {}
    for name, x in images.items():
        spread = posterior_spread(model, x, active)
        recon, kl = per_example_terms(model, x)
        row = {"active_dims": int(active.sum())}
        for key, values in (("std", spread["std"]), ("kl", spread["kl"]), ("neg_elbo", recon + kl)):
            v = values.double()
            row[key], row[f"{key}_se"] = v.mean().item(), v.std().item() / math.sqrt(len(v))
        table[name] = row
    return table
