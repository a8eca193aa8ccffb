"""Measuring a trained model: the test ELBO and the importance-weighted NLL.

Both are reported in **nats per example**, as a mean over the test images
with its standard error (the spread you would see from a different test set of
the same size). Evaluation draws its noise from its own seeded generator, so
it never disturbs the training run's random numbers.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Normal
from tqdm.auto import tqdm

from .losses import bernoulli_nll, iwae_log_likelihood, objective_terms

EVAL_SEED = 1234


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _mean_and_stderr(values: Tensor) -> tuple[float, float]:
    values = values.double()
    n = values.numel()
    stderr = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return values.mean().item(), stderr


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(x: Tensor, y: Tensor | None, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], None if y is None else y[start : start + batch_size]


@torch.inference_mode()
def per_example_terms(
    model: nn.Module, x: Tensor, y: Tensor | None = None, batch_size: int = 2000, seed: int = EVAL_SEED
) -> tuple[Tensor, Tensor]:
    """Reconstruction and KL for every image (one posterior sample each).

    Returns two ``(n,)`` float32 tensors on the CPU, in nats. For the plain
    :class:`~vae_course.models.Autoencoder` the KL is zero.
    """
    device = _device_of(model)
    gen = _generator(device, seed)
    recons, kls = [], []
    was_training = model.training
    model.eval()
    for xb, yb in _batches(x, y, batch_size):
        xb = xb.to(device)
        yb = None if yb is None else yb.to(device)
        recon, kl, _ = objective_terms(model, xb, yb, generator=gen)  # the trainer's objective
        recons.append(recon.cpu())
        kls.append(kl.cpu())
    model.train(was_training)
    return torch.cat(recons), torch.cat(kls)


def evaluate_elbo(
    model: nn.Module, x: Tensor, y: Tensor | None = None, beta: float = 1.0, batch_size: int = 2000
) -> dict[str, float]:
    """Test-set averages in nats per example: ``loss`` (= recon + beta·KL),
    ``recon``, ``kl``, ``elbo`` (= −(recon + KL), the beta = 1 bound) and the
    standard error of the ELBO."""
    recon, kl = per_example_terms(model, x, y, batch_size)
    elbo_mean, elbo_se = _mean_and_stderr(-(recon + kl))
    return {
        "loss": (recon + beta * kl).double().mean().item(),
        "recon": recon.double().mean().item(),
        "kl": kl.double().mean().item(),
        "elbo": elbo_mean,
        "elbo_stderr": elbo_se,
    }


def log_importance_weights(
    model: nn.Module, x: Tensor, y: Tensor | None = None, k: int = 100, generator: torch.Generator | None = None
) -> Tensor:
    """``log w = log p(x|z) + log p(z) - log q(z|x)`` for ``k`` samples per image.

    Args:
        x: ``(batch, 1, 28, 28)`` images on the model's device.
    Returns:
        ``(batch, k)`` float32.
    """
    mu, logvar = model.encode(x, y)
    mu, logvar = mu.float(), logvar.float()
    std = torch.exp(0.5 * logvar)
    b, d = mu.shape
    eps = torch.randn(b, k, d, device=mu.device, generator=generator)
    z = mu.unsqueeze(1) + std.unsqueeze(1) * eps  # (batch, k, latent)
    y_rep = None if y is None else y.repeat_interleave(k)
    logits = model.decode(z.reshape(b * k, d), y_rep)
    x_rep = x.repeat_interleave(k, dim=0)
    log_px_z = -bernoulli_nll(logits, x_rep).view(b, k)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = Normal(mu.unsqueeze(1), std.unsqueeze(1)).log_prob(z).sum(-1)
    return log_px_z + log_pz - log_qz


@torch.inference_mode()
def iwae_nll(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None = None,
    k: int = 5000,
    samples_per_pass: int = 100_000,
    seed: int = EVAL_SEED,
    progress: bool = True,
) -> dict[str, float]:
    """The importance-weighted estimate of ``-log p(x)``, in nats per example.

    ``-(logsumexp_k log w_k - log K)`` averaged over images (Burda et al. 2015).
    Its expectation is an *upper bound* on the true NLL that tightens as ``k``
    grows. Computed in chunks of about ``samples_per_pass`` decoder passes so
    that ``k = 5000`` fits in memory, in float32 throughout.

    Returns ``{"nll", "nll_stderr", "k", "n"}``.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k: the number of importance samples must be a positive integer, got {k!r}")
    if not getattr(model, "is_variational", False):
        raise TypeError("model: the IWAE estimate needs a variational model (one with encode -> (mu, logvar))")
    device = _device_of(model)
    gen = _generator(device, seed)
    k_chunk = min(k, max(1, samples_per_pass))
    images_per_pass = max(1, samples_per_pass // k_chunk)
    was_training = model.training
    model.eval()
    out = []
    batches = list(_batches(x, y, images_per_pass))
    for xb, yb in tqdm(batches, desc=f"IWAE k={k}", disable=not progress, leave=False):
        xb = xb.to(device)
        yb = None if yb is None else yb.to(device)
        chunks = []
        for start in range(0, k, k_chunk):
            chunks.append(log_importance_weights(model, xb, yb, min(k_chunk, k - start), gen))
        out.append(iwae_log_likelihood(torch.cat(chunks, dim=1)).cpu())
    model.train(was_training)
    nll, se = _mean_and_stderr(-torch.cat(out))
    return {"nll": nll, "nll_stderr": se, "k": k, "n": len(x)}
