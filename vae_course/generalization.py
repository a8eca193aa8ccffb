"""Does sampling help a VAE generalize instead of memorizing? Train-vs-test numbers.

The seed guide claims that sampling ``z`` "helps the model generalize instead of
memorizing". This module measures it. A model *memorizes* when it explains its
training images much better than new images of the same kind: the **gap**
between the per-example loss on test and on training images (same number of
each) grows. :func:`overfitting_experiment` trains three variants of the
seed's VAE, identical except for the objective, on a small training set long
enough to overfit, and records that gap as training goes on:

* ``"vae"``           sample ``z = mu + sigma * eps``, loss = reconstruction + KL;
* ``"vae-no-noise"``  ``z = mu`` (sigma forced to 0 in the decoder's input), loss =
  reconstruction + KL; the KL's only effect left is the ``||mu||^2 / 2`` pull
  towards 0, so this isolates the **sampling noise**;
* ``"ae"``            ``z = mu``, loss = reconstruction only: a plain autoencoder
  with the same layers.

The gap compared across variants is that of the **reconstruction at the
posterior mean** (decode ``mu``, no noise), the one quantity all three define.
Every value is per example, in nats.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .evaluate import per_example_terms
from .inference import batches, device_of, eval_mode
from .losses import bernoulli_nll, kl_divergence, reparameterize
from .models import VAE
from .progress import progress

__all__ = ["VARIANTS", "reconstruction_at_mean", "train_test_gap", "train_variant", "overfitting_experiment"]

VARIANTS = {"vae": (True, True), "vae-no-noise": (False, True), "ae": (False, False)}  # (noise, KL)


@torch.inference_mode()
def reconstruction_at_mean(model: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """``-log p(x | z = mu(x))`` for every image (Bernoulli, from logits), ``(n,)`` nats, on the CPU."""
    out = []
    with eval_mode(model):
        for xb, _ in batches(x, None, batch_size, device_of(model)):
            code = model.encode(xb)
            z = code[0] if isinstance(code, tuple) else code
            out.append(bernoulli_nll(model.decode(z), xb).float().cpu())
    return torch.cat(out)


def _mean_se(v: Tensor) -> tuple[float, float]:
    v = v.double()
    return v.mean().item(), v.std().item() / math.sqrt(len(v))


def train_test_gap(model: nn.Module, train_x: Tensor, test_x: Tensor, n: int | None = None,
                   elbo: bool | None = None) -> dict[str, float]:
    """Per-example losses on ``n`` training and ``n`` test images, and their gap.

    ``n`` defaults to the smaller split, so both means average the same count.
    Returns ``train_recon``, ``test_recon`` and ``recon_gap`` (test - train) of
    :func:`reconstruction_at_mean`, with standard errors ``*_se``; with ``elbo``
    (default: for a variational model) also ``train_elbo``, ``test_elbo`` and
    ``elbo_gap`` (train - test, so positive = better on training images), each
    ELBO from one posterior sample per image (:func:`vae_course.evaluate.per_example_terms`).
    A model trained without sampling noise has an untrained sigma: its ELBO means nothing.
    """
    elbo = getattr(model, "is_variational", False) if elbo is None else elbo
    n = min(len(train_x), len(test_x)) if n is None else n
    if not 1 < n <= min(len(train_x), len(test_x)):
        raise ValueError(f"n: need 2..{min(len(train_x), len(test_x))} images of each split, got {n}")
    out: dict[str, float] = {}
    for split, x in (("train", train_x[:n]), ("test", test_x[:n])):
        out[f"{split}_recon"], out[f"{split}_recon_se"] = _mean_se(reconstruction_at_mean(model, x))
        if elbo:
            recon, kl = per_example_terms(model, x)
            out[f"{split}_elbo"], out[f"{split}_elbo_se"] = _mean_se(-(recon + kl))
    out["recon_gap"] = out["test_recon"] - out["train_recon"]
    if "train_elbo" in out:
        out["elbo_gap"] = out["train_elbo"] - out["test_elbo"]
    out["n"] = n
    return out


def _check_variant(variant: str) -> tuple[bool, bool]:
    if variant not in VARIANTS:
        raise ValueError(f"variant: choose one of {sorted(VARIANTS)}, got {variant!r}")
    return VARIANTS[variant]


def train_variant(variant: str, train_x: Tensor, epochs: int, latent_dim: int = 20, hidden_dim: int = 400,
                  batch_size: int = 128, lr: float = 1e-3, seed: int = 0, test_x: Tensor | None = None,
                  eval_every: int = 0, n_eval: int = 1000, bar: Any = None) -> tuple[VAE, list[dict[str, float]]]:
    """Train one variant (see the module doc) of the seed's VAE with Adam; returns ``(model, history)``.

    Args:
        train_x: ``(n, 1, 28, 28)`` training images in [0, 1] (all of them are used).
        epochs: passes over ``train_x``.
        seed: seeds the weights, the minibatch order and the noise: the three
            variants start from the same weights.
        test_x, eval_every, n_eval: with ``eval_every > 0``, every ``eval_every``
            epochs (and after the last) append :func:`train_test_gap` on ``n_eval``
            images of each split to ``history`` (with an ``epoch`` key).
        bar: an open progress bar (:func:`vae_course.progress.progress`) advanced by
            one per epoch, or ``None``.
    """
    noise, use_kl = _check_variant(variant)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: must be a positive integer, got {epochs!r}")
    torch.manual_seed(seed)
    model = VAE(latent_dim=latent_dim, hidden_dim=hidden_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(len(train_x), generator=gen).split(batch_size):
            x = train_x[idx]
            mu, logvar = model.encode(x)
            z = reparameterize(mu, logvar, generator=gen) if noise else mu
            loss = bernoulli_nll(model.decode(z), x)
            if use_kl:
                loss = loss + kl_divergence(mu, logvar)
            optimizer.zero_grad(set_to_none=True)
            loss.mean().backward()
            optimizer.step()
        if test_x is not None and eval_every > 0 and (epoch % eval_every == 0 or epoch == epochs):
            n = min(n_eval, len(train_x), len(test_x))
            history.append({"epoch": epoch, **train_test_gap(model, train_x, test_x, n=n, elbo=noise)})
        if bar is not None:
            bar.update(1)
    return model.eval(), history


def overfitting_experiment(train_x: Tensor, test_x: Tensor, n_train: int = 1000, epochs: int = 100,
                           variants: tuple[str, ...] = tuple(VARIANTS), eval_every: int = 10,
                           n_eval: int = 1000, seed: int = 0, show_progress: bool = False,
                           **train_kwargs) -> dict[str, list[dict[str, float]]]:
    """Train each variant on the first ``n_train`` training images; record the train/test gap.

    With 1,000 images and 100 epochs (about 800 Adam steps) the seed's MLP has
    far more parameters than the data can pin down, so a model that can memorize
    will. Comparing with ``n_train`` = the full set for the same number of steps
    shows what more data does.

    With ``show_progress``, one progress bar counts the epochs of all the variants.

    Returns:
        ``{variant: history}``, each history a list of :func:`train_test_gap`
        dicts (with ``epoch``), the training images being the ``n_train`` seen.
    """
    if not 1 < n_train <= len(train_x):
        raise ValueError(f"n_train: need 2..{len(train_x)} images, got {n_train}")
    for v in variants:
        _check_variant(v)
    subset = train_x[:n_train]
    with progress(total=len(variants) * epochs, desc="epochs, all variants", unit="epoch",
                  disable=not show_progress) as bar:
        return {v: train_variant(v, subset, epochs, seed=seed, test_x=test_x, eval_every=eval_every,
                                 n_eval=n_eval, bar=bar, **train_kwargs)[1] for v in variants}
