"""Holes and gaps in a latent space, measured: notebook 1's numbers for any model.

Notebook 1 shows that a plain autoencoder's latent space has **holes** (regions
no training image is encoded to, where the decoder's output is an accident) and
that straight paths **between the clusters** of two digits cross nearly empty
space. These functions compute the same numbers for any encoder, so notebook 7
can put the autoencoder and the VAE side by side.

A model's *codes* are what its encoder returns for an image: the point ``z``
of an :class:`~vae_course.models.Autoencoder`, the posterior mean ``mu`` of a
variational model. Distances are in latent units, which differ between models;
every summary below is therefore a **ratio or a fraction**, comparable across
models (and across scales).
"""
from __future__ import annotations

import math
from itertools import combinations

import torch
from torch import Tensor, nn

from .inference import batches, device_of, eval_mode

__all__ = ["latent_codes", "random_codes", "empty_cell_fraction", "nearest_code_distances",
           "hole_metrics", "between_cluster_metrics", "latent_space_report"]


@torch.inference_mode()
def latent_codes(model: nn.Module, x: Tensor, y: Tensor | None = None, batch_size: int = 2000,
                 sample: bool = False, seed: int = 0) -> Tensor:
    """The encoder's code of every image, ``(n, latent_dim)`` float32 on the CPU.

    ``z`` for a plain autoencoder, the posterior mean ``mu`` for a VAE (the
    centre of ``q(z|x)``; what notebook 7 plots). With ``sample=True`` a VAE's
    code is one draw ``z ~ q(z|x)`` (seeded by ``seed``): the codes its decoder
    is actually trained on. (An autoencoder has nothing to sample: its ``z``.)
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    with eval_mode(model):
        for xb, yb in batches(x, y, batch_size, device_of(model)):
            code = model.encode(xb, yb) if getattr(model, "conditional", False) else model.encode(xb)
            if isinstance(code, tuple):
                mu, logvar = (t.float().cpu() for t in code)
                code = mu + logvar.mul(0.5).exp() * torch.randn(mu.shape, generator=gen) if sample else mu
            out.append(code.float().cpu())
    return torch.cat(out)


def _check_codes(z: Tensor, name: str) -> None:
    if not isinstance(z, Tensor) or z.dim() != 2 or len(z) < 2:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"{name}: expected codes of shape (n >= 2, latent_dim), got {shape}")


def bounding_box(z_train: Tensor) -> tuple[Tensor, Tensor]:
    """The smallest axis-aligned box holding every code: ``(low, high)``, each ``(latent_dim,)``."""
    _check_codes(z_train, "z_train")
    return z_train.min(0).values, z_train.max(0).values


def random_codes(z_train: Tensor, n: int, how: str = "box", generator: torch.Generator | None = None) -> Tensor:
    """``n`` random codes, ``(n, latent_dim)``: the two guesses of notebook 1.

    Args:
        z_train: ``(N, latent_dim)`` training codes (they define the box).
        how: ``"box"``, uniform over the codes' bounding box; ``"prior"``,
            ``N(0, I)`` (what a VAE samples from).
    """
    low, high = bounding_box(z_train)
    if how == "box":
        return low + (high - low) * torch.rand(n, z_train.shape[1], generator=generator)
    if how == "prior":
        return torch.randn(n, z_train.shape[1], generator=generator)
    raise ValueError(f"how: choose 'box' or 'prior', got {how!r}")


def empty_cell_fraction(z_train: Tensor, bins: int = 30) -> float:
    """The fraction of the ``bins x bins`` cells of the bounding box that hold no training code.

    Only defined for 2-D codes (in ``d`` dimensions there would be ``bins**d``
    cells, nearly all empty whatever the model).
    """
    _check_codes(z_train, "z_train")
    if z_train.shape[1] != 2:
        raise ValueError(f"z_train: empty cells are counted for 2-D codes only, got latent_dim = {z_train.shape[1]}")
    low, high = bounding_box(z_train)
    box = [low[0].item(), high[0].item(), low[1].item(), high[1].item()]
    counts = torch.histogramdd(z_train.float(), bins=[bins, bins], range=box).hist
    return (counts == 0).float().mean().item()


def nearest_code_distances(z: Tensor, reference: Tensor, chunk: int = 2000) -> Tensor:
    """For every code in ``z`` ``(m, d)``, its distance to the nearest code of ``reference`` ``(N, d)``: ``(m,)``."""
    return torch.cat([torch.cdist(z[i : i + chunk], reference).min(1).values for i in range(0, len(z), chunk)])


def hole_metrics(z_train: Tensor, z_test: Tensor, how: str = "box", n_random: int = 2000,
                 n_reference: int = 10_000, bins: int = 30, seed: int = 1) -> dict[str, float]:
    """How far random codes land from the data, compared with test codes (notebook 1, section 6).

    Draws ``n_reference`` training codes as the reference set and ``n_random``
    random codes (:func:`random_codes`), in that order from one generator seeded
    with ``seed`` (notebook 1's recipe: with its defaults the numbers are
    notebook 1's). Uses the first ``n_random`` test codes.

    Returns:
        ``median_test`` and ``median_random``: median distance to the nearest
        reference code (latent units); ``distance_ratio`` = their ratio
        (1: random codes land as close to the data as real images do);
        ``far_fraction``: the fraction of random codes farther from every
        reference code than 99% of the test codes are (0.01 if random codes
        looked like test codes); ``empty_cells``: :func:`empty_cell_fraction`
        (NaN unless the codes are 2-D).
    """
    _check_codes(z_train, "z_train")
    _check_codes(z_test, "z_test")
    g = torch.Generator().manual_seed(seed)
    reference = z_train[torch.randperm(len(z_train), generator=g)[:n_reference]]
    z_random = random_codes(z_train, n_random, how, generator=g)
    nn_test = nearest_code_distances(z_test[:n_random], reference)
    nn_random = nearest_code_distances(z_random, reference)
    threshold = nn_test.quantile(0.99)
    median_test, median_random = nn_test.median().item(), nn_random.median().item()
    return {
        "median_test": median_test,
        "median_random": median_random,
        "distance_ratio": median_random / median_test,
        "far_fraction": (nn_random > threshold).float().mean().item(),
        "empty_cells": empty_cell_fraction(z_train, bins) if z_train.shape[1] == 2 else math.nan,
    }


def between_cluster_metrics(z_train: Tensor, y_train: Tensor, steps: int = 10,
                            radius_fraction: float = 0.05) -> dict[str, object]:
    """How empty the straight lines between class centres are (notebook 1, "Between the clusters").

    Each class's centre is its mean code. For every pair of classes, ``steps``
    points on the line between their centres; at each, the number of training
    codes within ``radius`` = ``radius_fraction`` x the bounding box's diagonal.

    Returns:
        ``pair`` ``(a, b)``: the classes whose line crosses the emptiest spot
        (fewest codes at an interior point); ``counts``: the counts along that
        line, ``(steps,)`` (ends = the two centres); ``path`` ``(steps, d)``;
        ``radius`` (latent units); ``centre_counts``: codes near each class centre;
        ``dip``: that emptiest interior count divided by the median of the
        centre counts (near 1: the line stays as dense as a typical cluster
        centre; near 0: it crosses an empty gap); ``median_dip``: the median over
        all pairs of each line's emptiest interior count, divided the same way.
    """
    _check_codes(z_train, "z_train")
    if y_train.shape != (len(z_train),):
        raise ValueError(f"y_train: expected one label per code, shape ({len(z_train)},), got {tuple(y_train.shape)}")
    low, high = bounding_box(z_train)
    radius = radius_fraction * (high - low).norm().item()
    classes = sorted(set(y_train.tolist()))
    centre = {c: z_train[y_train == c].mean(0) for c in classes}
    centre_counts = {c: int((torch.cdist(centre[c][None], z_train) < radius).sum()) for c in classes}
    typical = max(float(torch.tensor(list(centre_counts.values()), dtype=torch.float64).median()), 1.0)
    t = torch.linspace(0, 1, steps)[:, None]
    lines = {}
    for a, b in combinations(classes, 2):
        path = torch.lerp(centre[a], centre[b], t)
        counts = (torch.cdist(path, z_train) < radius).sum(1)
        lines[(a, b)] = (path, counts, counts[1:-1].min().item())
    pair = min(lines, key=lambda ab: lines[ab][2])
    path, counts, emptiest = lines[pair]
    median_min = float(torch.tensor([v[2] for v in lines.values()], dtype=torch.float64).median())
    return {"pair": pair, "counts": counts, "path": path, "radius": radius, "centre_counts": centre_counts,
            "dip": emptiest / typical, "median_dip": median_min / typical}


def latent_space_report(model: nn.Module, train_x: Tensor, train_y: Tensor, test_x: Tensor,
                        sample: bool = False, seed: int = 1) -> dict[str, float]:
    """One column of notebook 7's autoencoder-vs-VAE table: every scale-free number above.

    Random codes are drawn both ways (``box`` and ``prior``): the box is the only
    guess a plain autoencoder allows, the prior is what a VAE is trained to sample.
    ``sample``: a VAE's training and test codes are one draw of ``q(z|x)`` each
    instead of ``mu`` (see :func:`latent_codes`).

    Returns:
        ``empty_cells`` (2-D only, else NaN), ``box_distance_ratio``,
        ``box_far_fraction``, ``prior_distance_ratio``, ``prior_far_fraction``,
        ``between_dip`` (the emptiest line's dip), ``median_dip``.
    """
    z_train = latent_codes(model, train_x, sample=sample, seed=seed)
    z_test = latent_codes(model, test_x, sample=sample, seed=seed + 1)
    report: dict[str, float] = {}
    for how in ("box", "prior"):
        holes = hole_metrics(z_train, z_test, how=how, seed=seed)
        report["empty_cells"] = holes["empty_cells"]
        report[f"{how}_distance_ratio"] = holes["distance_ratio"]
        report[f"{how}_far_fraction"] = holes["far_fraction"]
    between = between_cluster_metrics(z_train, train_y.cpu())
    report["between_dip"] = between["dip"]
    report["median_dip"] = between["median_dip"]
    return report
