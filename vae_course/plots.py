"""Figures for the course (matplotlib). Every function returns the figure, so a
notebook can show it, tweak it, or save it.

**One style for the whole course.** Importing this module applies
:data:`COURSE_STYLE` (font sizes, legend frames, resolution) to matplotlib, so
every figure the package and the notebooks draw looks the same and stays
readable where it is read: in the book's 752 px column (any figure up to
:data:`MAX_FIGURE_WIDTH_IN` wide) and, for a one-panel figure at the default
width, on a 390 px phone too. The sizes come from one rule
(:func:`readable_fontsize`): a figure shown in a column narrower than itself is
scaled down, so its text, in points, must be large enough to stay at least
:data:`MIN_TEXT_PX` pixels tall after that scaling.
:func:`course_style` gives the same settings as a context manager, and
:func:`small_text` lists the text of a figure that would come out too small.

Image grids use ``torchvision.utils.make_grid``; class colours use a
colour-blind-safe 10-colour palette (Paul Tol's "muted" scheme plus grey).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from . import interpolation

# Paul Tol's "muted" qualitative palette (9 colours, colour-blind safe) + grey.
CLASS_COLORS = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                "#DDCC77", "#CC6677", "#882255", "#AA4499", "#777777"]
CLASS_CMAP = ListedColormap(CLASS_COLORS, name="tol_muted_10")

# ------------------------------------------------------------------ the course's style
BOOK_COLUMN_PX = 752   # the book's text column in a 1280 px window (CSS pixels)
PHONE_COLUMN_PX = 390  # a phone held upright
MIN_TEXT_PX = 9.0      # the smallest text we accept on screen, in CSS pixels (body text is 16)
DPI = 80               # pixels per inch of the notebooks' inline PNGs (a figure 6 in wide is 480 px)

COURSE_STYLE: dict[str, object] = {
    "figure.dpi": DPI,
    "figure.figsize": (6.0, 4.0),   # one panel; 6 in is readable on a phone at 10 pt (see readable_fontsize)
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 12,
    "legend.loc": "best",           # matplotlib's search for the corner that hides the least data
    "legend.framealpha": 0.9,       # a legend that must overlap a line lets it show through
    "savefig.dpi": "figure",
    "savefig.bbox": "tight",
}
# The smallest font size above (tick labels, legends), in points.
SMALLEST_FONT_PT = min(v for k, v in COURSE_STYLE.items() if k.endswith("size") and isinstance(v, (int, float)))
# The widest figure whose smallest text stays MIN_TEXT_PX tall in the book column (11.6 in):
# wider multi-panel figures must set larger fonts, or better, fewer panels per row.
MAX_FIGURE_WIDTH_IN = SMALLEST_FONT_PT * BOOK_COLUMN_PX / (72 * MIN_TEXT_PX)


def readable_fontsize(width_in: float, column_px: float = BOOK_COLUMN_PX, dpi: float = DPI) -> float:
    """The smallest font size, in points, that is still :data:`MIN_TEXT_PX` tall on screen.

    A figure ``width_in`` inches wide is a PNG of ``width_in * dpi`` pixels; in a
    column of ``column_px`` pixels it is shown at its own size when it fits and
    scaled down to the column when it does not. A font of ``s`` points is
    ``s * dpi / 72`` pixels in the PNG, so on screen it is
    ``s * dpi / 72 * min(1, column_px / (width_in * dpi))`` pixels.
    """
    scale = min(1.0, column_px / (width_in * dpi))
    return MIN_TEXT_PX * 72.0 / (dpi * scale)


def _texts(fig: Figure) -> Iterator[Text]:
    """Every text of ``fig`` that is drawn: titles, axis labels, tick labels in view, legends, annotations."""
    fig.canvas.draw()  # ticks and legends exist only once the figure has been laid out
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    candidates = [*fig.texts, *(t for legend in legends if legend is not None
                                for t in (*legend.get_texts(), legend.get_title()))]
    for ax in fig.axes:
        candidates += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_visible():
                    lo, hi = sorted(axis.get_view_interval())
                    candidates.append(axis.label)
                    candidates += [label for tick in axis.get_major_ticks() if lo - 1e-9 <= tick.get_loc() <= hi + 1e-9
                                   for label in (tick.label1, tick.label2)]  # label2: the right or top side
    for text in candidates:
        if text.get_visible() and text.get_text().strip():
            yield text


def small_text(fig: Figure, column_px: float = BOOK_COLUMN_PX) -> list[tuple[str, float]]:
    """``(text, size in points)`` for each text of ``fig`` smaller than :func:`readable_fontsize`
    allows at the figure's width in a ``column_px`` column; empty when every text is readable."""
    floor = readable_fontsize(fig.get_figwidth(), column_px, fig.dpi)
    return [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < floor - 1e-9]


def apply_course_style() -> None:
    """Set :data:`COURSE_STYLE` in matplotlib's global settings (done when this module is imported)."""
    plt.rcParams.update(COURSE_STYLE)


@contextlib.contextmanager
def course_style() -> Iterator[None]:
    """The course's style for the figures drawn inside the ``with`` block only."""
    with plt.rc_context(COURSE_STYLE):
        yield


def epoch_axis(ax, label: str = "epoch") -> None:
    """Label ``ax``'s x axis as epochs, with whole-number ticks only (no "epoch 1.25")."""
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


apply_course_style()


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
    """Write ``(n, 1, 28, 28)`` images to a PNG grid with torchvision.

    Atomically (:func:`vae_course.run_folder.atomic_write_bytes`): a stop mid-write
    leaves the old image or the new one, and a link at ``path`` is replaced, never
    written through."""
    from io import BytesIO

    from .run_folder import atomic_write_bytes

    buffer = BytesIO()
    save_image(images.detach().float().cpu(), buffer, format="png", nrow=nrow, padding=2, pad_value=1.0)
    return atomic_write_bytes(path, buffer.getvalue())


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


LOSS_LABELS = {"loss": "training loss", "recon": "training reconstruction", "kl": "training KL",
               "test_loss": "test loss", "test_elbo": "test ELBO", "val_loss": "validation loss",
               "test_recon": "test reconstruction", "test_kl": "test KL"}


def loss_curves(history: Sequence[dict], keys: Sequence[str] = ("loss", "recon", "kl", "test_loss"),
                title: str = "Training curves", ax=None, labels: Mapping[str, str] | None = None):
    """Plot per-epoch values from a trainer's ``history`` (nats per example) against the epoch.

    The epoch axis has whole-number ticks only; ``labels`` renames curves
    (default: :data:`LOSS_LABELS`, e.g. ``"recon"`` is "training reconstruction").
    """
    names = {**LOSS_LABELS, **(labels or {})}
    if ax is None:
        fig, ax = plt.subplots()
    else:
        fig = ax.figure
    epochs = [h["epoch"] for h in history]
    for key in keys:
        if history and key in history[0]:
            ax.plot(epochs, [h[key] for h in history], marker="o", label=names.get(key, key))
    epoch_axis(ax)
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
