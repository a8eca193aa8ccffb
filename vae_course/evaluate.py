"""Measuring a trained model: the test ELBO and the importance-weighted NLL.

Both are reported in **nats per example**, as a mean over the test images
with its standard error (the spread you would see from a different test set of
the same size). Evaluation draws its noise from its own seeded generator, so
it never disturbs the training run's random numbers.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from .bounds import BOUNDS
from .inference import batches, device_of, eval_mode
from .losses import bernoulli_nll, iwae_log_likelihood, objective_terms
from .progress import progress as progress_bar

EVAL_SEED = 1234


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _mean_and_stderr(values: Tensor) -> tuple[float, float]:
    values = values.double()
    n = values.numel()
    stderr = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return values.mean().item(), stderr


@torch.inference_mode()
def per_example_terms(
    model: nn.Module, x: Tensor, y: Tensor | None = None, batch_size: int = 2000, seed: int = EVAL_SEED
) -> tuple[Tensor, Tensor]:
    """Reconstruction and KL for every image (one posterior sample each).

    Returns two ``(n,)`` float32 tensors on the CPU, in nats. For the plain
    :class:`~vae_course.models.Autoencoder` the KL is zero.
    """
    device = device_of(model)
    gen = _generator(device, seed)
    recons, kls = [], []
    with eval_mode(model):
        for xb, yb in batches(x, y, batch_size, device):
            recon, kl, _ = objective_terms(model, xb, yb, generator=gen)  # the trainer's objective
            recons.append(recon.cpu())
            kls.append(kl.cpu())
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


# What one decoder pass of the IWAE estimate may use (bytes): small enough for a
# learner's Colab (about 12.7 GB of RAM, 15 GB of T4 memory) with room to spare.
DEFAULT_MEMORY_BUDGET = 512 * 2**20


def iwae_bytes_per_sample(model: nn.Module, x: Tensor, y: Tensor | None = None) -> int:
    """Estimated memory (bytes) one importance sample needs in a decoder pass.

    Decodes one latent point with forward hooks on every submodule and counts:
    twice the bytes of all their outputs (for functional operations and kernels'
    work buffers that hooks do not see), four image-sized float32 tensors (the
    repeated image, the logits and the loss's temporaries) and eight
    latent-sized ones (``z``, ``eps`` and the log-densities' temporaries).

    Args:
        x: images ``(batch, 1, 28, 28)`` on the model's device (only ``x[:1]`` is used).
    """
    seen: list[int] = []

    def count(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            seen.append(output.numel() * output.element_size())

    y1 = None if y is None else y[:1]
    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.inference_mode():
            mu, _ = model.encode(x[:1], y1)
            seen.clear()  # only the decoder's outputs
            logits = model.decode(torch.zeros_like(mu), y1)
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * sum(seen) + 4 * 4 * logits.numel() + 8 * 4 * mu.shape[1]


def _log_weights(model: nn.Module, x: Tensor, y: Tensor | None, mu: Tensor, std: Tensor, eps: Tensor) -> Tensor:
    """``log w`` for images ``x`` ``(b, ...)`` with posteriors ``(b, d)`` and noise ``eps`` ``(b, k, d)``."""
    b, k, d = eps.shape
    z = mu.unsqueeze(1) + std.unsqueeze(1) * eps  # (batch, k, latent)
    y_rep = None if y is None else y.repeat_interleave(k)
    logits = model.decode(z.reshape(b * k, d), y_rep)
    x_rep = x.repeat_interleave(k, dim=0)
    log_px_z = -bernoulli_nll(logits, x_rep).view(b, k)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = Normal(mu.unsqueeze(1), std.unsqueeze(1)).log_prob(z).sum(-1)
    return log_px_z + log_pz - log_qz


def log_importance_weights(
    model: nn.Module, x: Tensor, y: Tensor | None = None, k: int = 100, generator: torch.Generator | None = None,
    samples_per_pass: int | None = None, on_pass: Callable[[int], None] | None = None,
) -> Tensor:
    """``log w = log p(x|z) + log p(z) - log q(z|x)`` for ``k`` samples per image.

    All the noise is drawn first, in one ``(batch, k, latent)`` tensor, so the
    numbers do not depend on ``samples_per_pass``, which only says how many
    samples go through the decoder at once (``None``: all ``batch * k``).
    ``on_pass(n)`` is called after each decoder pass with its number of samples
    (a progress bar's update).

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
    per_pass = b * k if samples_per_pass is None else max(1, samples_per_pass)
    done = on_pass or (lambda n: None)
    if per_pass >= b * k:
        out = _log_weights(model, x, y, mu, std, eps)
        done(b * k)
        return out
    out = torch.empty(b, k, device=mu.device)
    images = max(1, per_pass // k)  # whole images per pass, or slices of one image's k samples
    width = min(k, per_pass)
    for i in range(0, b, images):
        rows = slice(i, i + images)
        for s in range(0, k, width):
            cols = slice(s, s + width)
            out[rows, cols] = _log_weights(model, x[rows], None if y is None else y[rows], mu[rows], std[rows],
                                           eps[rows, cols])
            done(out[rows, cols].numel())
    return out


def _iwae_plan(model: nn.Module, x: Tensor, y: Tensor | None, k: int, samples_per_pass: int,
               memory_budget: int) -> tuple[int, int, int]:
    """``(k_chunk, images_per_pass, decoder_samples)``: how the noise is drawn
    (``images_per_pass`` images times ``k_chunk`` samples at a time, as before the
    budget existed) and how many samples the decoder takes at once.

    The noise drawn at once, ``(images, k_chunk, latent)`` float32 plus the
    latent temporaries, is kept within a quarter of the budget: only a model
    with a latent size above about 300 draws it in smaller pieces (and so gets
    other random numbers than with the unbounded layout)."""
    device = device_of(model)
    per_sample = iwae_bytes_per_sample(model, x[:1].to(device), None if y is None else y[:1].to(device))
    latent = model.encode(x[:1].to(device), None if y is None else y[:1].to(device))[0].shape[1]
    draw = min(max(1, samples_per_pass), max(1, memory_budget // (4 * 4 * 4 * latent)))
    k_chunk = min(k, draw)
    return k_chunk, max(1, draw // k_chunk), max(1, memory_budget // per_sample)


@torch.inference_mode()
def iwae_nll(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None = None,
    k: int = 5000,
    samples_per_pass: int = 100_000,
    seed: int = EVAL_SEED,
    progress: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, float | Tensor]:
    """The importance-weighted estimate of ``-log p(x)``, in nats per example.

    ``-(logsumexp_k log w_k - log K)`` averaged over images (Burda et al. 2015).
    Its expectation is an *upper bound* on the true NLL that tightens as ``k``
    grows. In float32 throughout.

    Memory: the decoder sees at most ``memory_budget`` bytes' worth of samples
    at once (estimated by :func:`iwae_bytes_per_sample`; 512 MB by default),
    whatever the model and ``k``. ``samples_per_pass`` only lays out the random
    draws (noise for about that many samples is drawn at a time, as before the
    budget existed), so the numbers for a seed do not depend on the budget.

    The progress bar counts samples (images times ``k``) and moves after every
    decoder pass, so it advances every few seconds whatever ``k`` is.

    Returns ``{"nll", "nll_stderr", "k", "n", "per_example"}``, the last an ``(n,)``
    tensor of every image's estimate in nats (on the CPU).
    """
    most = int(BOUNDS["iw_samples"].high)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= most:
        raise ValueError(f"k: the number of importance samples must be an integer from 1 to {most}, got {k!r:.40}")
    if not getattr(model, "is_variational", False):
        raise TypeError("model: the IWAE estimate needs a variational model (one with encode -> (mu, logvar))")
    if not isinstance(memory_budget, int) or memory_budget <= 0:
        raise ValueError(f"memory_budget: must be a positive number of bytes, got {memory_budget!r}")
    device = device_of(model)
    gen = _generator(device, seed)
    out = []
    with eval_mode(model):
        k_chunk, images_per_pass, decoder_samples = _iwae_plan(model, x, y, k, samples_per_pass, memory_budget)
        bar = progress_bar(total=len(x) * k, desc=f"IWAE k={k}", unit="sample", unit_scale=True,
                           disable=not progress, leave=False)
        for xb, yb in batches(x, y, images_per_pass, device):
            chunks = []
            for start in range(0, k, k_chunk):
                chunks.append(log_importance_weights(model, xb, yb, min(k_chunk, k - start), gen, decoder_samples,
                                                     on_pass=bar.update))
            out.append(iwae_log_likelihood(torch.cat(chunks, dim=1)).cpu())
        bar.close()
    per_example = -torch.cat(out)  # (n,) nats: each image's estimate, for paired comparisons of two models
    nll, se = _mean_and_stderr(per_example)
    return {"nll": nll, "nll_stderr": se, "k": k, "n": len(x), "per_example": per_example}


# ---------------------------------------------------------------- how long will it take?
IWAE_LIMIT_SECONDS = 10 * 60  # above this, evaluate refuses the IWAE estimate unless told to go on
PROBE_SECONDS = 0.5  # the timed probe grows until one run of it takes this long


def iwae_seconds_estimate(model: nn.Module, x: Tensor, y: Tensor | None, k: int,
                          probe_seconds: float = PROBE_SECONDS) -> tuple[float, int]:
    """``(seconds, probed samples)``: how long :func:`iwae_nll` of all of ``x`` with ``k``
    samples per image will take, from timed runs on a few images with a small K.

    The probe starts at 2 images with 16 samples each and grows (K first, then images)
    until one run takes ``probe_seconds`` or covers the whole job, so it costs about
    two such runs whatever ``k`` is, and is long enough for the time per sample to
    be the one of a long run (tiny runs are dominated by fixed costs).
    """
    n = len(x)
    images, samples = min(n, 2), min(k, 16)
    iwae_nll(model, x[:1], None if y is None else y[:1], k=1, progress=False)  # first-call costs, not timed
    while True:
        start = time.perf_counter()
        iwae_nll(model, x[:images], None if y is None else y[:images], k=samples, progress=False)
        took = time.perf_counter() - start
        if took >= probe_seconds or (images == n and samples == k):
            return took * n * k / (images * samples), images * samples
        grow = min(8.0, max(2.0, probe_seconds / max(took, 1e-9)))
        if samples < k:
            samples = min(k, math.ceil(samples * grow))
        else:
            images = min(n, math.ceil(images * grow))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_iwae_duration(model: nn.Module, x: Tensor, y: Tensor | None, k: int, where: str,
                        allow_long: bool = False, limit_seconds: float = IWAE_LIMIT_SECONDS) -> str:
    """Time a probe (:func:`iwae_seconds_estimate`) and return the line that announces the
    IWAE estimate with its expected duration; raise ``ValueError`` with one line that
    says how to proceed when it would take over ``limit_seconds`` and ``allow_long`` is
    not set. ``where``: the device, for the message (e.g. ``"cpu (2 threads)"``)."""
    seconds, probed = iwae_seconds_estimate(model, x, y, k)
    n = len(x)
    if seconds > limit_seconds and not allow_long:
        fits = max(1, int(n * limit_seconds / seconds))
        raise ValueError(
            f"--iw-samples {k}: the IWAE estimate on {n:,} images would take about {_duration(seconds)} on {where} "
            f"(from a timed probe of {probed:,} samples), over the {_duration(limit_seconds)} this command runs "
            f"without asking; use a smaller --iw-samples, or --sample-test {fits} (about {_duration(limit_seconds)}), "
            f"or add --allow-long to run it anyway")
    return (f"IWAE estimate: K={k} on {n:,} images, about {_duration(seconds)} on {where} (from a timed probe of "
            f"{probed:,} samples)")
