"""Checks for notebook 4 (the KL divergence): the VAE's KL, the general diagonal-Gaussian
KL, and the whole loss (reconstruction + KL, nats per example)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..losses import bernoulli_nll, gaussian_kl, kl_divergence, vae_loss
from . import engine
from .cases import image_cases, mu_logvar_cases
from .engine import Variant


def check_kl(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(mu, logvar) -> (batch,)``: KL(N(mu, sigma^2) || N(0, I)) summed over dimensions."""
    kl = kl_divergence
    variants = [
        Variant("sign error", lambda m, lv: -kl(m, lv),
                "the KL is -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2); yours has the opposite sign."),
        Variant("mean instead of sum", lambda m, lv: kl(m, lv) / m.shape[-1],
                "sum over the latent dimensions (dim=-1), don't average: each dimension adds its own KL."),
        Variant("summed over the batch too", lambda m, lv: kl(m, lv).sum(),
                "return one KL per example, shape (batch,): sum over dim=-1 only."),
        Variant("variance used as log-variance", lambda m, lv: -0.5 * (1 + torch.log(lv) - m.pow(2) - lv).sum(-1),
                "the second argument is already log sigma^2: use it as is, and sigma^2 = logvar.exp()."),
        Variant("missing 1/2", lambda m, lv: 2 * kl(m, lv), "don't forget the factor -1/2 in front."),
        Variant("missing the 1", lambda m, lv: kl(m, lv) + 0.5 * m.shape[-1],
                "the formula starts with 1 + ...: without it the KL of q = prior is not 0."),
    ]
    return engine.run_check("kl_divergence", fn, kl, mu_logvar_cases(), variants, check_grad=True)


def check_gaussian_kl(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(mu_q, logvar_q, mu_p, logvar_p) -> (batch,)``, the general diagonal-Gaussian KL."""
    g = torch.Generator().manual_seed(2)
    cases = [(m, lv, torch.randn(m.shape, generator=g), torch.randn(m.shape, generator=g))
             for m, lv in mu_logvar_cases()]
    variants = [
        Variant("arguments swapped", lambda mq, lq, mp, lp: gaussian_kl(mp, lp, mq, lq),
                "KL is not symmetric: KL(q || p) puts var_q and (mu_q - mu_p)^2 over var_p."),
        Variant("missing 1/2", lambda *a: 2 * gaussian_kl(*a), "don't forget the factor 1/2."),
        Variant("mean instead of sum", lambda *a: gaussian_kl(*a) / a[0].shape[-1],
                "sum over the latent dimensions, don't average."),
    ]
    return engine.run_check("gaussian_kl", fn, gaussian_kl, cases, variants, check_grad=True)


def vae_loss_cases() -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(logits, x, mu, logvar)``: the shared image cases with 20-dimensional codes."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for logits, x in image_cases():
        mu = torch.randn(len(x), 20, generator=g)
        cases.append((logits, x, mu, torch.randn(len(x), 20, generator=g) * 0.5))
    return cases


def batch_mean_vae_loss(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The package's :func:`vae_course.losses.vae_loss` averaged over the batch: a scalar, nats per example."""
    return vae_loss(logits, x, mu, logvar).loss.mean()


def check_vae_loss(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(logits, x, mu, logvar) -> scalar``: mean over the batch of recon + KL (nats per example)."""
    recon, kl = bernoulli_nll, kl_divergence
    variants = [
        Variant("sum over the batch", lambda lg, x, m, lv: vae_loss(lg, x, m, lv).loss.sum(),
                "divide by the batch size (take the mean over examples): losses are in nats per example."),
        Variant("KL averaged over the batch, reconstruction summed",
                lambda lg, x, m, lv: recon(lg, x).sum() + kl(m, lv).mean(),
                "both terms need the same reduction, or the KL is weighted 1/batch_size (a classic bug)."),
        Variant("KL subtracted", lambda lg, x, m, lv: (recon(lg, x) - kl(m, lv)).mean(),
                "the loss is the *negative* ELBO = reconstruction + KL."),
        Variant("KL forgotten", lambda lg, x, m, lv: recon(lg, x).mean(),
                "add the KL term: without it this is a plain autoencoder."),
    ]
    return engine.run_check("vae_loss", fn, batch_mean_vae_loss, vae_loss_cases(), variants, check_grad=True)
