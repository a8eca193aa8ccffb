"""Figures for the course (matplotlib). Every function returns the figure, so a
notebook can show it, tweak it, or save it.

Image grids use ``torchvision.utils.make_grid``; class colours use a
colour-blind-safe 10-colour palette (Paul Tol's "muted" scheme plus grey).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from . import interpolation

# Paul Tol's "muted" qualitative palette (9 colours, colour-blind safe) + grey.
CLASS_COLORS = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                "#DDCC77", "#CC6677", "#882255", "#AA4499", "#777777"]
CLASS_CMAP = ListedColormap(CLASS_COLORS, name="tol_muted_10")


def image_grid(images: Tensor, nrow: int = 8, title: str | None = None, ax=None, scale: float = 0.6):
    """Show ``(n, 1, 28, 28)`` images (values in [0, 1]) as one grid."""
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        fig, ax = plt.subplots(figsize=(max(2.0, nrow * scale), rows * scale + (0.4 if title else 0.1)))
    else:
        fig = ax.figure
    ax.imshow(grid[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def save_grid(images: Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write ``(n, 1, 28, 28)`` images to a PNG grid with torchvision."""
    path = Path(path)
    save_image(images.detach().float().cpu(), path, nrow=nrow, padding=2, pad_value=1.0)
    return path


def reconstruction_pairs(originals: Tensor, reconstructions: Tensor, per_row: int = 8) -> Tensor:
    """Interleave rows: ``per_row`` originals, then their reconstructions, and so on."""
    rows = []
    for start in range(0, len(originals), per_row):
        rows += [originals[start : start + per_row], reconstructions[start : start + per_row]]
    return torch.cat(rows)


@torch.no_grad()
def reconstruct(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
    """The model's reconstructions as probabilities, using the posterior mean
    ``z = mu`` for a VAE (the most likely code, not a random sample)."""
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device)
    y = None if y is None else y.to(device)
    code = model.encode(x, y)
    z = code[0] if isinstance(code, tuple) else code
    return torch.sigmoid(model.decode(z, y)).cpu()


def show_reconstructions(model: nn.Module, x: Tensor, y: Tensor | None = None, per_row: int = 8,
                         title: str = "Originals (odd rows) and reconstructions (even rows)"):
    """Originals and reconstructions, row by row."""
    recon = reconstruct(model, x, y)
    return image_grid(reconstruction_pairs(x.cpu(), recon, per_row), nrow=per_row, title=title)


def latent_scatter(z: Tensor, labels: Tensor, title: str = "Latent codes of test images",
                   ax=None, s: float = 4, alpha: float = 0.6, class_names: Sequence[str] | None = None):
    """Scatter 2-D latent codes ``(n, 2)``, coloured by class label ``(n,)``."""
    z, labels = z.detach().cpu(), labels.detach().cpu()
    if z.shape[1] != 2:
        raise ValueError(f"z: expected 2-D codes of shape (n, 2), got {tuple(z.shape)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5))
    else:
        fig = ax.figure
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap=CLASS_CMAP, vmin=-0.5, vmax=9.5, s=s, alpha=alpha)
    cbar = fig.colorbar(points, ax=ax, ticks=range(10))
    if class_names is not None:
        cbar.ax.set_yticklabels(class_names)
    cbar.set_label("class")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title)
    return fig


def latent_manifold(model: nn.Module, extent: float = 3.0, n: int = 15, dims: tuple[int, int] = (0, 1),
                    title: str = "Decoded grid of latent points", ax=None):
    """Decode an ``n × n`` grid of latent points in ``[-extent, extent]²``
    (along ``dims``; other coordinates 0) and show the images in place.
    The square centred on the prior's mean; :func:`latent_grid` does any rectangle."""
    return latent_grid(model, (-extent, -extent), (extent, extent), n=n, dims=dims, title=title, ax=ax)


def loss_curves(history: Sequence[dict], keys: Sequence[str] = ("loss", "recon", "kl", "test_loss"),
                title: str = "Training curves", ax=None):
    """Plot per-epoch values from a trainer's ``history`` (nats per example)."""
    labels = {"loss": "training loss", "recon": "reconstruction", "kl": "KL divergence",
              "test_loss": "test loss", "test_elbo": "test ELBO", "val_loss": "validation loss",
              "test_recon": "test reconstruction", "test_kl": "test KL"}
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    epochs = [h["epoch"] for h in history]
    for key in keys:
        if history and key in history[0]:
            ax.plot(epochs, [h[key] for h in history], marker="o", label=labels.get(key, key))
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


@torch.no_grad()
def interpolate(model: nn.Module, z0: Tensor, z1: Tensor, steps: int = 10, spherical: bool = False) -> Tensor:
    """Decode ``steps`` codes from ``z0`` to ``z1`` (linear or spherical); returns ``(steps, 1, 28, 28)``."""
    z = interpolation.path(z0.detach().cpu().float(), z1.detach().cpu().float(), steps, spherical)
    device = next(model.parameters()).device
    return torch.sigmoid(model.decode(z.to(device))).cpu()


@torch.no_grad()
def latent_grid(model: nn.Module, z_min: Sequence[float], z_max: Sequence[float], n: int = 15,
                dims: tuple[int, int] = (0, 1), title: str = "Decoded grid of latent points", ax=None):
    """Decode an ``n × n`` grid over any rectangle ``[z_min[0], z_max[0]] × [z_min[1], z_max[1]]``
    of the latent plane spanned by ``dims`` (other coordinates 0), and show each image at its code.

    Like :func:`latent_manifold`, but for a box that is not centred on 0 (a plain
    autoencoder's codes can sit anywhere). ``z_min`` and ``z_max`` are two numbers each,
    in latent units; the image's axes are in the same units.
    """
    (x0, y0), (x1, y1) = (tuple(float(v) for v in z_min), tuple(float(v) for v in z_max))
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"z_min must be below z_max in both coordinates, got {z_min} and {z_max}")
    device = next(model.parameters()).device
    # Cell centres, so each image sits exactly over the codes it stands for.
    xs = x0 + (torch.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (torch.arange(n) + 0.5) * (y1 - y0) / n
    gy, gx = torch.meshgrid(ys.flip(0), xs, indexing="ij")  # top row = largest z2
    z = torch.zeros(n * n, model.latent_dim)
    z[:, dims[0]], z[:, dims[1]] = gx.reshape(-1), gy.reshape(-1)
    images = torch.sigmoid(model.decode(z.to(device))).cpu()
    grid = make_grid(images, nrow=n, padding=0)[0]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    else:
        fig = ax.figure
    ax.imshow(grid, cmap="gray", extent=(x0, x1, y0, y1), vmin=0, vmax=1, aspect="auto")
    ax.set_xlabel(f"$z_{dims[0] + 1}$")
    ax.set_ylabel(f"$z_{dims[1] + 1}$")
    ax.set_title(title)
    return fig
