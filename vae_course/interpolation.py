"""Paths between two latent codes: straight (``lerp``) and along the sphere (``slerp``).

Notebook 7 asks which path to walk from one digit's code to another's. Both functions
are maths on tensors only (no model, no figure); ``plots.interpolate`` decodes a path.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["lerp", "slerp", "path"]


def lerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """The straight line from ``z0`` to ``z1`` ``(latent_dim,)`` at fractions ``t`` ``(steps,)``:
    ``(steps, latent_dim)``."""
    return torch.lerp(z0, z1, t[:, None])


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between two codes ``(latent_dim,)`` at fractions ``t`` ``(steps,)``:
    ``(steps, latent_dim)``.

    In many dimensions Gaussian samples concentrate near a sphere of radius
    ``sqrt(latent_dim)``; a straight line between two of them passes closer to
    the origin, where codes are atypical. slerp follows the sphere instead.
    """
    omega = torch.arccos(torch.clamp(torch.dot(z0 / z0.norm(), z1 / z1.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:  # (nearly) parallel codes: sin(omega) ~ 0, and the two paths agree
        return lerp(z0, z1, t)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def path(z0: Tensor, z1: Tensor, steps: int = 10, spherical: bool = False) -> Tensor:
    """``steps`` evenly spaced codes from ``z0`` to ``z1`` (both ends included), ``(steps, latent_dim)``."""
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)
    return slerp(z0, z1, t) if spherical else lerp(z0, z1, t)
