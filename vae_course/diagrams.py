"""Diagrams of the course's ideas, drawn by code (matplotlib only).

Every function returns ``(fig, alt_text)``: the figure and a one-paragraph
description of it for readers who cannot see it (a notebook prints it under the
figure, or passes it as the image's alt text). :func:`posterior_ellipses` also
returns the numbers it drew.

* :func:`vae_architecture`      the VAE as boxes and arrows, shapes read from a model;
* :func:`reparameterization_graph` where gradients flow before and after the trick;
* :func:`elbo_identity`         ``log p(x) = ELBO + KL(q || p(z|x))`` as a stacked bar;
* :func:`posterior_ellipses`    the true posterior against the best mean-field ``q``.

Colours come from Paul Tol's colour-blind-safe palettes; meaning never rests on
colour alone (shapes, line styles and labels carry it too).
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Ellipse, FancyBboxPatch
from torch import Tensor, nn

from . import plots  # noqa: F401  (importing it applies the course's plotting style)
from .toy_models import LinearGaussian

__all__ = ["vae_architecture", "reparameterization_graph", "elbo_identity", "posterior_ellipses",
           "mean_field_q"]

# Paul Tol's "light" scheme for box fills, "muted" for lines.
ENCODER, LATENT, NOISE, DECODER, LOSS = "#77AADD", "#EEDD88", "#FFAABB", "#44BB99", "#DDDDDD"
GRADIENT, BLOCKED, INK = "#332288", "#CC3311", "#222222"
# The box diagrams are laid out in canvas units and drawn at INCH_PER_UNIT inches per unit, so that
# the widest (14 units) is 10.5 in, and every text is at least SMALL_PT: readable in the book's
# column at that width (vae_course.plots.readable_fontsize; tests/test_diagrams.py checks it).
INCH_PER_UNIT = 0.75
TEXT_PT, SMALL_PT, TITLE_PT = 10.5, 9.5, 11.5


# ------------------------------------------------------------------ drawing primitives
def _canvas(width: float, height: float, ax=None):
    """A blank axes in canvas units, x in [0, width] and y in [0, height], drawn at INCH_PER_UNIT inches each."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(width * INCH_PER_UNIT, height * INCH_PER_UNIT))
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)
    else:
        fig = ax.figure
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig, ax


def _box(ax, x: float, y: float, text: str, color: str, w: float = 1.5, h: float = 0.8,
         round_: bool = True, fontsize: float = TEXT_PT) -> tuple[float, float, float, float]:
    """A labelled box centred at ``(x, y)``; returns its ``(x, y, w, h)`` for arrows."""
    style = "round,pad=0.02,rounding_size=0.15" if round_ else "square,pad=0.02"
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style,
                                facecolor=color, edgecolor=INK, linewidth=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=INK)
    return x, y, w, h


def _circle(ax, x: float, y: float, text: str, color: str, r: float = 0.5, fontsize: float = TEXT_PT):
    """A random (stochastic) node: a circle, as in Kingma & Welling's figures."""
    ax.add_patch(Ellipse((x, y), 2 * r, 2 * r, facecolor=color, edgecolor=INK, linewidth=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=INK)
    return x, y, 2 * r, 2 * r


def _edge(node, toward: tuple[float, float]) -> tuple[float, float]:
    """The point where the segment from a node's centre to ``toward`` leaves its bounding box."""
    x, y, w, h = node
    dx, dy = toward[0] - x, toward[1] - y
    if dx == 0 and dy == 0:
        return x, y
    scale = min(w / 2 / abs(dx) if dx else math.inf, h / 2 / abs(dy) if dy else math.inf)
    return x + dx * scale, y + dy * scale


def _arrow(ax, a, b, color: str = INK, style: str = "-", lw: float = 1.4, rad: float = 0.0,
           label: str | None = None, label_offset: tuple[float, float] = (0.0, 0.18), fontsize: float = SMALL_PT):
    """An arrow from node ``a`` to node ``b`` (edge to edge), optionally labelled at its middle."""
    start = _edge(a, (b[0], b[1]))
    end = _edge(b, (a[0], a[1]))
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color=color, lw=lw, linestyle=style,
                                shrinkA=2, shrinkB=2, mutation_scale=14,
                                connectionstyle=f"arc3,rad={rad}"))
    if label:
        mx, my = (start[0] + end[0]) / 2 + label_offset[0], (start[1] + end[1]) / 2 + label_offset[1]
        ax.text(mx, my, label, ha="center", va="bottom", fontsize=fontsize, color=color)
    return start, end


def _arc_middle(start, end, rad: float) -> tuple[float, float]:
    """The middle of a matplotlib ``arc3`` curve from ``start`` to ``end`` (it bows by ``rad`` x chord)."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    return (start[0] + end[0]) / 2 + rad * dy / 2, (start[1] + end[1]) / 2 - rad * dx / 2


# ------------------------------------------------------------------ 1. the architecture
def _mlp_vae_sizes(model: nn.Module) -> dict[str, int]:
    """Layer sizes of the seed's MLP VAE (``fc1``, ``fc21``, ``fc22``, ``fc3``, ``fc4``)."""
    names = ("fc1", "fc21", "fc22", "fc3", "fc4")
    layers = [getattr(model, n, None) for n in names]
    if not all(isinstance(layer, nn.Linear) for layer in layers) or getattr(model, "conditional", False):
        raise TypeError(f"model: vae_architecture draws the seed's MLP VAE (linear layers {', '.join(names)}), "
                        f"got {type(model).__name__}; use vae_course.models.VAE(latent_dim=...)")
    fc1, fc21, fc22, fc3, fc4 = layers
    return {"pixels": fc1.in_features, "hidden": fc1.out_features, "latent": fc21.out_features,
            "latent_logvar": fc22.out_features, "decoder_hidden": fc3.out_features, "out": fc4.out_features}


def vae_architecture(model: nn.Module | None = None, ax=None):
    """The VAE as boxes and arrows, every shape read from ``model``'s layers.

    Encoder ``x -> fc1 + ReLU -> (fc21 -> mu, fc22 -> log sigma^2)``, the
    reparameterized sample ``z = mu + sigma * eps`` with ``eps ~ N(0, I)`` coming
    in from below, decoder ``fc3 + ReLU -> fc4 -> logits``, and the loss
    ``reconstruction + KL`` fed by the logits, the input and ``(mu, log sigma^2)``.

    Args:
        model: a :class:`vae_course.models.VAE` (default: the seed's, ``VAE()``,
            latent dimension 20). ``VAE(latent_dim=2)`` draws 2 everywhere the
            latent size appears.
        ax: optional axes to draw into.
    Returns:
        ``(fig, alt_text)``.
    """
    if model is None:
        from .models import VAE

        model = VAE()
    s = _mlp_vae_sizes(model)
    fig, ax = _canvas(14.0, 6.0, ax)
    y, w = 3.2, 1.55
    x_in = _box(ax, 0.8, y, f"image $x$\n({s['pixels']})", LOSS, w=1.4, h=1.0)
    h_enc = _box(ax, 2.7, y, f"fc1 + ReLU\n({s['hidden']})", ENCODER, w=w, h=1.0)
    mu = _box(ax, 4.85, y + 1.05, f"fc21 → $\\mu$\n({s['latent']})", ENCODER, w=w, h=0.95)
    logvar = _box(ax, 4.85, y - 1.05, f"fc22 → $\\log\\sigma^2$\n({s['latent_logvar']})", ENCODER, w=w, h=0.95)
    z = _box(ax, 7.05, y, f"$z = \\mu + \\sigma \\odot \\varepsilon$\n({s['latent']})", LATENT, w=1.95, h=1.0)
    eps = _circle(ax, 7.05, 5.25, f"$\\varepsilon \\sim \\mathcal{{N}}(0, I)$\n({s['latent']})", NOISE, r=0.72,
                  fontsize=SMALL_PT)
    h_dec = _box(ax, 9.25, y, f"fc3 + ReLU\n({s['decoder_hidden']})", DECODER, w=w, h=1.0)
    logits = _box(ax, 11.2, y, f"fc4 → logits\n({s['out']})", DECODER, w=w, h=1.0)
    x_hat = _box(ax, 13.15, y, f"$\\hat x$ = sigmoid\n(logits) ({s['out']})", LOSS, w=1.55, h=1.0, fontsize=SMALL_PT)
    loss = _box(ax, 10.3, 0.85, "loss = reconstruction + KL\n"
                "$= \\mathrm{BCE}(\\mathrm{logits}, x) + \\mathrm{KL}(\\mu, \\log\\sigma^2)$",
                LOSS, w=4.2, h=0.95, fontsize=SMALL_PT)
    for a, b in ((x_in, h_enc), (h_enc, mu), (h_enc, logvar), (mu, z), (logvar, z), (z, h_dec), (h_dec, logits),
                 (logits, x_hat)):
        _arrow(ax, a, b)
    _arrow(ax, eps, z, color=BLOCKED)
    ax.text(7.8, 4.25, "noise from outside\nthe network", color=BLOCKED, fontsize=SMALL_PT, va="center")
    _arrow(ax, logits, (logits[0], *loss[1:]), label="reconstruction", label_offset=(0.9, -0.1), fontsize=SMALL_PT)
    # Two elbows into the loss's left side: the target x (dotted) and the KL's inputs (dashed).
    left = loss[0] - loss[2] / 2
    for x0, y0, y1, ls, text in ((x_in[0], y - 0.5, 0.62, ":", "the input $x$ is the reconstruction's target"),
                                 (logvar[0], logvar[1] - 0.48, 1.08, "--", "KL term, from $\\mu$ and $\\log\\sigma^2$")):
        ax.plot([x0, x0, left - 0.25], [y0, y1, y1], color=INK, lw=1.2, ls=ls)
        ax.annotate("", xy=(left, y1), xytext=(left - 0.3, y1),
                    arrowprops=dict(arrowstyle="-|>", color=INK, lw=1.2, mutation_scale=14))
        ax.text(x0 + 0.15, y1 + 0.06, text, fontsize=SMALL_PT, color=INK, va="bottom")
    for text, x0, x1 in (("encoder $q_\\phi(z\\,|\\,x)$", 2.0, 5.7), ("decoder $p_\\theta(x\\,|\\,z)$", 8.5, 12.0)):
        ax.plot([x0, x1], [5.2, 5.2], color=INK, lw=1.0)
        ax.text((x0 + x1) / 2, 5.3, text, ha="center", va="bottom", fontsize=TITLE_PT)
    d = s["latent"]
    alt = (f"Block diagram of the VAE. An image x of {s['pixels']} pixels enters the encoder: a layer fc1 with "
           f"ReLU gives {s['hidden']} hidden units, which feed two heads, fc21 giving the mean mu ({d} numbers) "
           f"and fc22 giving the log-variance log sigma squared ({s['latent_logvar']} numbers). The code "
           f"z = mu + sigma times eps ({d} numbers) is formed with noise eps drawn from N(0, I), which comes in "
           f"from outside the network. The decoder maps z through fc3 with ReLU ({s['decoder_hidden']} units) "
           f"and fc4 to {s['out']} logits, whose sigmoid is the reconstruction. The loss adds the "
           f"reconstruction term (binary cross-entropy between the logits and x) and the KL term computed "
           f"from mu and log sigma squared.")
    return fig, alt


# ------------------------------------------------------------------ 2. the computation graph
def _graph_panel(ax, reparameterized: bool) -> None:
    _canvas(8.8, 6.0, ax)
    y = 3.3
    x = _box(ax, 0.55, y, "$x$", LOSS, w=0.8, h=0.7)
    enc = _box(ax, 2.05, y, "encoder\n$\\phi$", ENCODER, w=1.3, h=0.95)
    mu = _box(ax, 3.9, y + 1.35, "$\\mu$", ENCODER, w=0.9, h=0.7)
    sigma = _box(ax, 3.9, y - 1.35, "$\\sigma$", ENCODER, w=0.9, h=0.7)
    if reparameterized:
        z = _box(ax, 5.75, y, "$z = \\mu + \\sigma\\varepsilon$", LATENT, w=1.75, h=0.8, fontsize=TEXT_PT)
        eps = _circle(ax, 5.8, 0.95, "$\\varepsilon$", NOISE, r=0.42)
        ax.text(6.35, 0.95, "$\\varepsilon \\sim \\mathcal{N}(0, I)$:\nan input", va="center", fontsize=SMALL_PT)
        _arrow(ax, eps, z)
    else:
        z = _circle(ax, 5.8, y, "$z \\sim$\n$\\mathcal{N}(\\mu, \\sigma^2)$", NOISE, r=0.75, fontsize=SMALL_PT)
        ax.text(5.45, y - 0.9, "a random node", ha="left", va="top", fontsize=SMALL_PT)
    loss = _box(ax, 8.1, y, "loss\n$f(z)$", LOSS, w=1.0, h=0.9)
    for a, b in ((x, enc), (enc, mu), (enc, sigma), (mu, z), (sigma, z), (z, loss)):
        _arrow(ax, a, b)
    # Gradients run backwards: dashed, curved away from the forward arrows.
    grad = dict(color=GRADIENT, style="--", lw=1.6)
    a, b = _arrow(ax, loss, z, rad=0.6, **grad)
    mx, my = _arc_middle(a, b, 0.6)
    ax.text(mx, my + 0.12, "$\\partial f/\\partial z$", color=GRADIENT, fontsize=TEXT_PT, ha="center", va="bottom")
    for target, rad, text, va in ((mu, 0.45, "$\\partial z/\\partial\\mu = 1$", "bottom"),
                                  (sigma, -0.45, "$\\partial z/\\partial\\sigma = \\varepsilon$", "top")):
        if reparameterized:
            a, b = _arrow(ax, z, target, rad=rad, **grad)
            mx, my = _arc_middle(a, b, rad)
            ax.text(mx + 0.3, my + (0.12 if va == "bottom" else -0.12), text, color=GRADIENT, fontsize=TEXT_PT,
                    ha="left", va=va)
            _arrow(ax, target, enc, rad=rad, **grad)
        else:
            a, b = _arrow(ax, z, target, color=BLOCKED, style="--", lw=1.6, rad=rad)
            ax.plot(*_arc_middle(a, b, rad), marker="X", markersize=15, color=BLOCKED, markeredgecolor="white")
    if reparameterized:
        ax.set_title("After: $z = \\mu + \\sigma\\varepsilon$, $\\varepsilon$ an input\n"
                     "gradients reach $\\mu$, $\\sigma$ and the encoder", fontsize=TITLE_PT)
    else:
        ax.text(4.9, y + 1.95, "blocked: a random draw\nhas no derivative", color=BLOCKED, fontsize=SMALL_PT, ha="left")
        ax.set_title("Before: $z$ drawn from $\\mathcal{N}(\\mu, \\sigma^2)$\n"
                     "no gradient through the draw", fontsize=TITLE_PT)


def reparameterization_graph():
    """The reparameterization trick as two computation graphs, side by side.

    Left (before): ``z ~ N(mu, sigma^2)`` is a random node; the loss's gradient
    reaches ``z`` but cannot pass back to ``mu`` and ``sigma`` (red dashed arrows,
    crossed out). Right (after): ``z = mu + sigma * eps`` is a deterministic node
    and ``eps ~ N(0, I)`` an input; gradients (blue dashed arrows) flow back to
    ``mu``, ``sigma`` and the encoder. Solid arrows: the forward computation.
    Circles: random nodes; rounded boxes: deterministic ones.

    Returns:
        ``(fig, alt_text)``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(14 * INCH_PER_UNIT, 5.4 * INCH_PER_UNIT))
    _graph_panel(axes[0], reparameterized=False)
    _graph_panel(axes[1], reparameterized=True)
    handles = [plt.Line2D([], [], color=INK, lw=1.4, label="forward computation"),
               plt.Line2D([], [], color=GRADIENT, lw=1.6, ls="--", label="gradient (backward)"),
               plt.Line2D([], [], color=BLOCKED, lw=1.6, ls="--", marker="X", markersize=9,
                          label="gradient blocked"),
               plt.Line2D([], [], color=INK, marker="o", ls="", markerfacecolor=NOISE, markersize=11,
                          label="random node"),
               plt.Line2D([], [], color=INK, marker="s", ls="", markerfacecolor=LATENT, markersize=11,
                          label="deterministic node")]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False, fontsize=SMALL_PT)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.07, wspace=0.05)
    alt = ("Two computation graphs side by side. In both, the input x goes through the encoder to mu and sigma, "
           "which determine the code z, and z feeds the loss f(z). Left, before the trick: z is a random node "
           "drawn from N(mu, sigma squared); the loss's gradient reaches z, but the dashed red arrows from z back "
           "to mu and sigma are crossed out, because no gradient passes through a random draw. Right, after the "
           "trick: z = mu + sigma times eps is a deterministic node and eps, drawn from N(0, I), is an extra "
           "input; dashed blue gradient arrows run from the loss to z, from z to mu (derivative 1) and to sigma "
           "(derivative eps), and on to the encoder.")
    return fig, alt


# ------------------------------------------------------------------ 3. the ELBO identity
def _as_floats(values, name: str) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().double().cpu().reshape(-1).tolist()
    elif isinstance(values, (int, float)):
        values = [values]
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}: expected finite numbers (nats), got {values}")
    return values


def elbo_identity(log_px: float, elbo: float | Sequence[float], gap: float | Sequence[float],
                  labels: Sequence[str] | None = None, ax=None):
    """``log p(x) = ELBO + KL(q || p(z|x))`` as a stacked bar per guess ``q``.

    Each bar is the ELBO (solid) with the gap ``KL(q || p(z|x))`` stacked on top
    (hatched); every stack ends exactly at ``log p(x)`` (dashed line). The numbers
    are the caller's (e.g. notebook 2's toy model); they must satisfy the identity.

    Args:
        log_px: the evidence ``log p(x)``, nats (one data point).
        elbo, gap: one number each, or one per guess ``q`` (equal lengths), nats;
            ``gap >= 0``.
        labels: a name per guess (default ``q``, or ``q1, q2, ...``).
    Returns:
        ``(fig, alt_text)``.
    Raises:
        ValueError: when ``elbo + gap`` differs from ``log_px`` by more than
            ``1e-6 * max(1, |log_px|)`` or a gap is negative.
    """
    (log_px,) = _as_floats(log_px, "log_px")
    elbos, gaps = _as_floats(elbo, "elbo"), _as_floats(gap, "gap")
    if len(elbos) != len(gaps):
        raise ValueError(f"elbo and gap: expected one gap per ELBO, got {len(elbos)} and {len(gaps)}")
    tol = 1e-6 * max(1.0, abs(log_px))
    for e, g in zip(elbos, gaps):
        if g < -tol:
            raise ValueError(f"gap: a KL divergence cannot be negative, got {g:.6g}")
        if abs(e + g - log_px) > tol:
            raise ValueError(f"the numbers break the identity: ELBO + gap = {e + g:.6g} but log p(x) = {log_px:.6g};"
                             " pass the ELBO and KL(q || p(z|x)) of the same q and x")
    labels = list(labels) if labels is not None else (["q"] if len(elbos) == 1
                                                       else [f"q{i + 1}" for i in range(len(elbos))])
    if len(labels) != len(elbos):
        raise ValueError(f"labels: expected {len(elbos)} names, got {len(labels)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(elbos) + 3.0), 4.6))
    else:
        fig = ax.figure
    span = max(max(gaps), 1e-3)
    floor = min(elbos) - 0.6 * span  # the axis does not start at 0: the bars' tops are the values
    xs = range(len(elbos))
    ax.bar(xs, [e - floor for e in elbos], bottom=floor, width=0.55, color=ENCODER, edgecolor=INK, label="ELBO")
    ax.bar(xs, gaps, bottom=elbos, width=0.55, color=NOISE, edgecolor=INK, hatch="//",
           label="gap $= \\mathrm{KL}(q\\,\\|\\,p(z\\,|\\,x))$")
    ax.axhline(log_px, color=INK, ls="--", lw=1.3)
    n = len(elbos)
    total = log_px + 0.25 * span - floor
    ax.text(n - 0.6, log_px + 0.01 * total, f"$\\log p(x)$\n= {log_px:.3f}", va="bottom", ha="left", fontsize=SMALL_PT)
    for i, (e, g) in enumerate(zip(elbos, gaps)):
        ax.text(i, e - 0.02 * total, f"ELBO\n{e:.3f}", ha="center", va="top", fontsize=SMALL_PT)
        if g > 0.08 * total:  # room inside the hatched segment's height: label beside it
            ax.text(i + 0.3, e + g / 2, f" KL {g:.3f}", ha="left", va="center", fontsize=SMALL_PT)
        else:  # a thin segment: label it above the dashed line
            ax.text(i, log_px + 0.02 * total, f"KL {g:.3f}", ha="center", va="bottom", fontsize=SMALL_PT)
    ax.set_xticks(list(xs), labels)
    ax.set_xlim(-0.6, n + 0.2)
    ax.set_ylim(floor, log_px + 0.25 * span)
    ax.set_ylabel("nats")
    ax.set_title("$\\log p(x) = \\mathrm{ELBO} + \\mathrm{KL}(q\\,\\|\\,p(z\\,|\\,x))$")
    ax.legend(loc="lower right", fontsize=SMALL_PT, framealpha=0.95)
    fig.tight_layout()
    parts = "; ".join(f"{n}: ELBO {e:.3f} nats plus gap {g:.3f} nats" for n, e, g in zip(labels, elbos, gaps))
    alt = (f"Stacked bar chart of the identity log p(x) = ELBO + KL(q || p(z|x)). A dashed line marks "
           f"log p(x) = {log_px:.3f} nats. For each guess q a solid bar rises to its ELBO and a hatched segment, "
           f"the gap KL(q || p(z|x)), stacks on top of it and ends exactly at the dashed line. {parts}.")
    return fig, alt


# ------------------------------------------------------------------ 4. mean-field q vs the posterior
def mean_field_q(toy: LinearGaussian, x: Tensor) -> dict[str, Tensor]:
    """The KL(q || p(z|x))-optimal factorized Gaussian ``q`` for the toy model's posterior.

    For a Gaussian target ``N(m, Lambda^-1)`` the best ``q = prod_j N(m_j, v_j)``
    keeps the mean and takes ``v_j = 1 / Lambda_jj``, the inverse of the
    precision's diagonal (Bishop 2006, section 10.1.2) — never wider than the
    true marginal variance ``(Lambda^-1)_jj``.

    Args:
        toy: a :class:`~vae_course.toy_models.LinearGaussian`.
        x: one data point, ``(d,)`` or ``(1, d)``.
    Returns:
        ``mean (k,)``, ``q_var (k,)``, ``true_var (k,)`` (the posterior's marginal
        variances), ``post_cov (k, k)``, ``precision (k, k)``, and the nats
        ``log_px``, ``elbo``, ``gap`` (= KL(q || p(z|x))), all float64.
    """
    x = torch.as_tensor(x, dtype=torch.float64).reshape(1, -1)
    if x.shape[1] != toy.d:
        raise ValueError(f"x: expected one data point of {toy.d} numbers, got shape {tuple(x.shape)}")
    mean, post_cov = toy.posterior(x)
    precision = torch.linalg.inv(post_cov)
    q_var = 1.0 / precision.diagonal()
    q_cov = torch.diag(q_var)
    return {"mean": mean[0], "q_var": q_var, "true_var": post_cov.diagonal().clone(), "post_cov": post_cov,
            "precision": precision, "log_px": toy.log_marginal(x)[0], "elbo": toy.elbo(x, mean, q_cov)[0],
            "gap": toy.gap(x, mean, q_cov)[0]}


def _ellipse(mean: Tensor, cov: Tensor, radius: float, **style) -> Ellipse:
    """The contour ``(z - mean)^T cov^-1 (z - mean) = radius^2`` of a 2-D Gaussian."""
    values, vectors = torch.linalg.eigh(cov)
    minor, major = values.clamp(min=0).sqrt().tolist()  # eigh sorts ascending
    angle = math.degrees(math.atan2(vectors[1, 1].item(), vectors[0, 1].item()))  # direction of the major axis
    return Ellipse(tuple(mean.tolist()), 2 * radius * major, 2 * radius * minor, angle=angle, **style)


def posterior_ellipses(toy: LinearGaussian, x: Tensor, ax=None):
    """The true posterior ``p(z|x)`` against the best mean-field ``q``, as 1- and 2-sigma ellipses.

    The posterior of notebook 2's linear-Gaussian model is a correlated Gaussian
    (tilted ellipses, solid); the best factorized ``q`` (:func:`mean_field_q`) is
    axis-aligned and narrower (dashed): fit by ``KL(q || p)``, a mean-field
    approximation underestimates the posterior's variances. The ellipses are
    the points at Mahalanobis distance 1 and 2 from the mean.

    Args:
        toy: a :class:`~vae_course.toy_models.LinearGaussian` with ``k = 2`` latent dimensions.
        x: one data point, ``(d,)`` or ``(1, d)``.
    Returns:
        ``(fig, alt_text, numbers)``, ``numbers`` being :func:`mean_field_q`'s dict
        plus ``correlation`` (of the posterior) and ``variance_ratio`` (``q_var / true_var``
        per dimension, ``1 - correlation^2`` for both in two dimensions).
    """
    if toy.k != 2:
        raise ValueError(f"toy: the ellipse picture needs a 2-D latent space, this model has k = {toy.k}")
    n = mean_field_q(toy, x)
    cov = n["post_cov"]
    n["correlation"] = cov[0, 1] / cov.diagonal().prod().sqrt()
    n["variance_ratio"] = n["q_var"] / n["true_var"]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 5.6))  # one panel: readable on a phone
    else:
        fig = ax.figure
    mean = n["mean"]
    for radius, alpha in ((1.0, 1.0), (2.0, 0.55)):
        ax.add_patch(_ellipse(mean, cov, radius, fill=False, edgecolor=ENCODER, lw=2.2, alpha=alpha))
        ax.add_patch(_ellipse(mean, torch.diag(n["q_var"]), radius, fill=False, edgecolor=BLOCKED, lw=2.2,
                              ls="--", alpha=alpha))
    ax.plot(*mean.tolist(), marker="+", color=INK, markersize=12, mew=2)
    reach = 2.3 * cov.diagonal().sqrt().max().item()
    ax.set_xlim(mean[0].item() - reach, mean[0].item() + reach)
    ax.set_ylim(mean[1].item() - reach, mean[1].item() + reach)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=ENCODER, lw=2.2, label="true posterior $p(z\\,|\\,x)$"),
               plt.Line2D([], [], color=BLOCKED, lw=2.2, ls="--", label="best mean-field $q$"),
               plt.Line2D([], [], color=INK, marker="+", ls="", markersize=10, mew=2, label="common mean")]
    ax.legend(handles=handles, loc="upper right")
    sd_true, sd_q = n["true_var"].sqrt().tolist(), n["q_var"].sqrt().tolist()
    ax.text(0.02, 0.02, f"std $z_1$: {sd_true[0]:.3f} (posterior), {sd_q[0]:.3f} ($q$)\n"
            f"std $z_2$: {sd_true[1]:.3f} (posterior), {sd_q[1]:.3f} ($q$)\n"
            f"correlation {n['correlation'].item():.2f}; gap KL$(q\\,\\|\\,p)$ = {n['gap'].item():.3f} nats",
            transform=ax.transAxes, fontsize=plt.rcParams["legend.fontsize"], va="bottom",
            bbox=dict(facecolor="white", edgecolor="0.7", alpha=0.9))
    ax.set_title("1σ and 2σ ellipses: mean-field $q$ is too narrow")
    fig.tight_layout()
    alt = (f"Two sets of nested ellipses (1 and 2 standard deviations) around the same mean in the (z1, z2) "
           f"plane. The true posterior p(z|x), solid, is tilted: its coordinates have correlation "
           f"{n['correlation'].item():.2f}, with standard deviations {sd_true[0]:.3f} and {sd_true[1]:.3f}. The "
           f"best mean-field q, dashed, is axis-aligned and narrower, with standard deviations {sd_q[0]:.3f} and "
           f"{sd_q[1]:.3f}: it underestimates the posterior's spread. Its ELBO is {n['gap'].item():.3f} nats below "
           f"log p(x).")
    return fig, alt, n
