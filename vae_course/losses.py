"""The formulas of the course, one small function each.

Conventions, the same everywhere in the course:

* every function works on a batch and returns one number **per example**,
  shape ``(batch,)``, *summed* over pixels and latent dimensions;
* the trainer then takes the **mean over the batch**, so every printed loss is
  in *nats per example* (a positive number; an ELBO is its negative);
* decoders output **logits**, never probabilities, so the Bernoulli term can be
  computed stably (the numbers of ``binary_cross_entropy_with_logits``);
* everything is computed in float32, even when the model ran in bf16/fp16.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


def _check_pair(mu: Tensor, logvar: Tensor, names: tuple[str, str] = ("mu", "logvar")) -> None:
    """Clear errors for the two usual mistakes: non-tensors and mismatched shapes."""
    for name, t in zip(names, (mu, logvar)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 1:
            raise ValueError(f"{name}: expected shape (batch, latent_dim), got a scalar")
        if not t.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if mu.shape != logvar.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        )


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``z ~ N(mu, exp(logvar))`` as ``z = mu + sigma * eps``, ``eps ~ N(0, I)``.

    The randomness lives in ``eps`` alone, so ``z`` is a differentiable function
    of ``mu`` and ``logvar`` (the reparameterization trick).

    Args:
        mu: ``(batch, latent_dim)`` means.
        logvar: ``(batch, latent_dim)`` log-variances, ``log sigma^2``.
        generator: optional ``torch.Generator`` for reproducible noise.
    Returns:
        ``(batch, latent_dim)`` samples.
    """
    _check_pair(mu, logvar)
    std = torch.exp(0.5 * logvar)  # sigma = exp(log sigma^2 / 2), always positive
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + std * eps


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """The KL of each latent dimension, ``(batch, latent_dim)``, in nats.

    ``-1/2 * (1 + log sigma^2 - mu^2 - sigma^2)`` elementwise; summing over the
    last axis gives :func:`kl_divergence`. Used to spot posterior collapse
    (dimensions whose KL is ~0 carry no information) and for free bits.
    """
    _check_pair(mu, logvar)
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per example, in nats.

    The closed form derived in notebook 4 (and written in the seed guide):
    ``-1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)``.

    Args:
        mu, logvar: ``(batch, latent_dim)``.
    Returns:
        ``(batch,)``, summed over latent dimensions, always >= 0.
    """
    return kl_per_dimension(mu, logvar).sum(dim=-1)


def free_bits_kl(mu: Tensor, logvar: Tensor, free_bits: float) -> Tensor:
    """The free-bits KL (Kingma et al. 2016), a scalar in nats per example.

    The minibatch-average KL of each latent dimension is clamped below at
    ``free_bits`` nats, then summed over dimensions. A dimension already under
    the floor gets no gradient pushing it further towards the prior, which
    protects against posterior collapse.
    """
    if not isinstance(free_bits, (int, float)) or not free_bits >= 0:
        raise ValueError(f"free_bits: must be a non-negative number of nats, got {free_bits!r}")
    return kl_per_dimension(mu, logvar).mean(dim=0).clamp(min=free_bits).sum()


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """``KL(N(mu_q, diag(var_q)) || N(mu_p, diag(var_p)))`` per example, in nats.

    ``1/2 * sum_j (log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)``.
    With ``mu_p = 0`` and ``logvar_p = 0`` it equals :func:`kl_divergence`.
    All four arguments have the same shape ``(batch, latent_dim)`` (the prior's
    may broadcast from ``(latent_dim,)``). Returns ``(batch,)``.
    """
    _check_pair(mu_q, logvar_q, ("mu_q", "logvar_q"))
    for name, t in (("mu_p", mu_p), ("logvar_p", logvar_p)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        try:
            torch.broadcast_shapes(t.shape, mu_q.shape)
        except RuntimeError:
            raise ValueError(
                f"{name}: shape {tuple(t.shape)} does not broadcast to mu_q's {tuple(mu_q.shape)}"
            ) from None
    mu_q, logvar_q, mu_p, logvar_p = (t.float() for t in (mu_q, logvar_q, mu_p, logvar_p))
    ratio = (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp()
    kl = 0.5 * (logvar_p - logvar_q + ratio - 1)
    return kl.expand(torch.broadcast_shapes(kl.shape, mu_q.shape)).sum(dim=-1)


def _check_images(pred: Tensor, x: Tensor, pred_name: str) -> None:
    for name, t in ((pred_name, pred), ("x", x)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name}: expected shape (batch, ...), got {tuple(t.shape)}")
    if pred.shape != x.shape:
        raise ValueError(
            f"{pred_name} and x must have the same shape, got {tuple(pred.shape)} and {tuple(x.shape)}"
        )


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Bernoulli reconstruction term ``-log p(x | z)`` per example, in nats.

    Each pixel is a coin with ``P(pixel = 1) = sigmoid(logit)``; the term is the
    binary cross-entropy summed over pixels. ``x`` may be grayscale in [0, 1]
    (then it is a cross-entropy, not a normalised likelihood: see notebook 5).

    Args:
        logits: ``(batch, ...)`` decoder outputs (before the sigmoid).
        x: targets of the same shape, in [0, 1].
    Returns:
        ``(batch,)``.
    """
    _check_images(logits, x, "logits")
    return _BernoulliNLL.apply(logits.float(), x.float())


class _BernoulliNLL(torch.autograd.Function):
    """``bernoulli_nll`` with its gradient written out by hand.

    Per pixel, with ``l`` the logit, the term is ``softplus(l) - x * l``, and
    ``softplus(l) = log(1 + e^l) = relu(l) - log sigmoid(|l|)``: every piece is
    finite for any ``l`` (``sigmoid(|l|)`` lies in [1/2, 1)). Its derivative is
    the prediction error ``sigmoid(l) - x``, so the backward pass is one line.

    The numbers are those of ``F.binary_cross_entropy_with_logits`` (the tests
    check values and gradients against it and ``torch.distributions``), but on
    the CPU that function's ``log1p`` kernel is slow: about 0.5 ms per batch of
    128 images here, ten times ``torch.exp``, which made it ~10 % of a training
    step. On a GPU the two are equally fast.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(logits, x)
        per_pixel = torch.relu(logits) - logits * x - torch.log(torch.sigmoid(logits.abs()))
        return per_pixel.flatten(1).sum(dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:  # type: ignore[override]
        logits, x = ctx.saved_tensors
        grad = grad.view(-1, *[1] * (logits.dim() - 1))  # (batch,) -> (batch, 1, 1, 1)
        d_logits = (torch.sigmoid(logits) - x) * grad if ctx.needs_input_grad[0] else None
        d_x = -logits * grad if ctx.needs_input_grad[1] else None  # d/dx of (softplus(l) - x l)
        return d_logits, d_x


def gaussian_nll(x_hat: Tensor, x: Tensor, sigma: float = math.sqrt(0.5)) -> Tensor:
    """Gaussian reconstruction term ``-log N(x; x_hat, sigma^2 I)`` per example, in nats.

    ``||x - x_hat||^2 / (2 sigma^2) + (D/2) log(2 pi sigma^2)`` with ``D`` pixels.
    With the default ``sigma^2 = 1/2`` this is the seed's ``||x - x_hat||^2``
    plus the constant ``(D/2) log(pi)``: squared error *is* a Gaussian
    likelihood, and ``sigma`` sets how much it weighs against the KL.

    Args:
        x_hat: ``(batch, ...)`` predicted means (e.g. ``sigmoid(logits)``).
        x: targets of the same shape.
        sigma: the fixed standard deviation (> 0).
    Returns:
        ``(batch,)``.
    """
    _check_images(x_hat, x, "x_hat")
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not sigma > 0:
        raise ValueError(f"sigma: must be a positive number, got {sigma!r}")
    sq = (x.float() - x_hat.float()).pow(2).flatten(1).sum(dim=1)
    d = math.prod(x.shape[1:])  # pixels per example (also defined for an empty batch)
    return sq / (2 * sigma**2) + 0.5 * d * math.log(2 * math.pi * sigma**2)


class LossTerms(NamedTuple):
    """Per-example terms, each ``(batch,)`` in nats: ``loss = recon + beta * kl``."""

    loss: Tensor
    recon: Tensor
    kl: Tensor


def vae_loss(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0) -> LossTerms:
    """The VAE objective per example: Bernoulli reconstruction + beta * KL.

    With ``beta = 1`` the loss is the negative ELBO, an upper bound on
    ``-log p(x)``. With ``beta != 1`` it is a useful objective but **not** a bound,
    so compare models by their beta = 1 ELBO (see :func:`elbo`).
    """
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta >= 0:
        raise ValueError(f"beta: must be a non-negative number, got {beta!r}")
    recon = bernoulli_nll(logits, x)
    kl = kl_divergence(mu, logvar)
    return LossTerms(recon + beta * kl, recon, kl)


def objective_terms(
    model: torch.nn.Module, x: Tensor, y: Tensor | None = None, free_bits: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The course's objective, per example: what the trainer minimises and the evaluator reports.

    One posterior sample ``z ~ q(z|x)`` per image (the reparameterization trick),
    then the Bernoulli reconstruction term and the closed-form KL.

    Args:
        model: a VAE (``encode -> (mu, logvar)``, ``decode -> logits``) or a plain
            autoencoder (``is_variational = False``: its KL is zero).
        x: ``(batch, 1, 28, 28)`` images in [0, 1]; ``y``: ``(batch,)`` labels or ``None``.
        free_bits: nats per latent dimension (0: off), see :func:`free_bits_kl`.
        generator: the noise of the sample (``None``: the global generator).
    Returns:
        ``(recon, kl, kl_for_loss)``, each ``(batch,)`` in nats. ``kl_for_loss`` is
        the KL the loss uses: the plain KL, or the free-bits KL (the same value for
        every example) when ``free_bits > 0``. The loss is
        ``(recon + beta * kl_for_loss).mean()``.
    """
    if not getattr(model, "is_variational", False):
        logits, _ = model(x)
        zero = torch.zeros(len(x), device=x.device)
        return bernoulli_nll(logits, x), zero, zero
    mu, logvar = model.encode(x, y)
    logits = model.decode(reparameterize(mu, logvar, generator=generator), y)
    recon = bernoulli_nll(logits, x)
    kl = kl_divergence(mu, logvar)
    kl_for_loss = free_bits_kl(mu, logvar, free_bits).expand(len(x)) if free_bits > 0 else kl
    return recon, kl, kl_for_loss


def elbo(recon: Tensor, kl: Tensor) -> Tensor:
    """The evidence lower bound per example: ``-(recon + kl)`` (a negative number, nats)."""
    return -(recon + kl)


def iwae_log_likelihood(log_weights: Tensor) -> Tensor:
    """Importance-weighted estimate ``log p(x) ~= logsumexp_k log w_k - log K``.

    ``log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)`` with ``z_k ~ q(z|x)``.
    Its expectation is a lower bound on ``log p(x)`` that tightens as ``K`` grows
    (Burda et al. 2015), so ``-`` it is an upper-bound *estimate* of the NLL.

    Args:
        log_weights: ``(batch, K)``.
    Returns:
        ``(batch,)`` in nats, computed in float32.
    """
    if not isinstance(log_weights, Tensor):
        raise TypeError(f"log_weights: expected a torch.Tensor, got {type(log_weights).__name__}")
    if log_weights.dim() != 2 or log_weights.shape[1] < 1:
        raise ValueError(f"log_weights: expected shape (batch, K) with K >= 1, got {tuple(log_weights.shape)}")
    lw = log_weights.float()
    return torch.logsumexp(lw, dim=1) - math.log(lw.shape[1])


def aggregate_posterior_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """``log q(z)`` of the aggregate posterior ``q(z) = 1/N sum_n N(z; mu_n, diag(exp(logvar_n)))``.

    The mixture of every encoded image's Gaussian (notebook 7). If the encoder
    matched the prior perfectly, ``q(z)`` would equal ``N(0, I)``. Computed with
    ``logsumexp`` so that no density underflows.

    Args:
        z: ``(m, latent_dim)`` points where the density is wanted.
        mu, logvar: ``(N, latent_dim)`` the encoder's outputs for ``N`` images.
    Returns:
        ``(m,)`` log-densities in nats (log of a density, so it can be positive).
    """
    _check_pair(mu, logvar)
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != mu.shape[-1]:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"z: expected shape (m, {mu.shape[-1]}), got {shape}")
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    diff = z[:, None, :] - mu[None, :, :]  # (m, N, d)
    log_normal = -0.5 * (diff.pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)  # (m, N)
    return torch.logsumexp(log_normal, dim=1) - math.log(mu.shape[0])


def bernoulli_entropy(x: Tensor) -> Tensor:
    """The smallest value :func:`bernoulli_nll` can take for targets ``x``, per example, in nats.

    ``sum_i H(x_i)`` with ``H(p) = -p log p - (1 - p) log(1 - p)`` (``0 log 0 = 0``).
    For every pixel, ``BCE(x_i, p_i) = H(x_i) + KL(Ber(x_i) || Ber(p_i)) >= H(x_i)``,
    with equality only when the decoder predicts ``p_i = x_i``. So on grayscale
    targets even a perfect reconstruction has a positive "loss" (about 45.5 nats
    per MNIST test image); on binary targets the floor is 0 and the BCE is a true
    negative log-likelihood (notebook 5).

    Args:
        x: ``(batch, ...)`` targets in [0, 1].
    Returns:
        ``(batch,)`` float32, summed over every non-batch dimension, >= 0.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x: expected shape (batch, ...), got {tuple(x.shape)}")
    x = x.float()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x: values must lie in [0, 1], found [{x.min().item():.3g}, {x.max().item():.3g}]")
    h = -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x))  # xlogy(0, 0) = 0: binary pixels cost nothing
    return h.flatten(1).sum(dim=1)
