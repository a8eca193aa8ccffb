"""Figures for the course, built with matplotlib; every function returns the figure."""
from __future__ import annotations

from pathlib import Path


import matplotlib.pyplot as plt
import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image


def image_grid(images: Tensor, nrow: int = 8, title: str | None = None, ax=None):
    """Show ``(n, 1, 28, 28)`` images (values in [0, 1]) as one grid."""
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(nrow * 0.6, (len(images) + nrow - 1) // nrow * 0.6 + 0.4))
    else:
        fig = ax.figure
    ax.imshow(grid[0], cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def save_grid(images: Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write ``(n, 1, 28, 28)`` images to a PNG grid with torchvision."""
    path = Path(path)
    save_image(images.detach().float().cpu(), path, nrow=nrow, padding=2, pad_value=1.0)
    return path


def reconstruction_pairs(originals: Tensor, reconstructions: Tensor) -> Tensor:
    """Interleave rows of originals and reconstructions for one grid: 8 of each per pair of rows."""
    rows = []
    for start in range(0, len(originals), 8):
        rows += [originals[start : start + 8], reconstructions[start : start + 8]]
    return torch.cat(rows)
