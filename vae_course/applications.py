"""What a trained VAE is used for (notebook 9): anomaly scores, augmentation,
compression (lossless sizes and a lossy code) and denoising, each as a few short functions.

Images are ``(n, 1, 28, 28)`` tensors with values in [0, 1]; scores are per
image, in nats (or bits where the name says so).
"""
from __future__ import annotations

import io
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .diagnostics import nats_to_bits, posterior_params
from .evaluate import per_example_terms
from .inference import batches, device_of, eval_mode
from .losses import kl_per_dimension
from .progress import progress

# ------------------------------------------------------------ anomaly detection


def anomaly_scores(model: nn.Module, x: Tensor, y: Tensor | None = None) -> Tensor:
    """The negative ELBO of every image, ``(n,)`` in nats: high = unlikely = anomalous.

    ``-ELBO(x) = -log p(x|z) + KL(q(z|x) || p(z))`` is an upper bound on
    ``-log p(x)``; one posterior sample per image, drawn from a fixed seed.
    """
    recon, kl = per_example_terms(model, x, y)
    return recon + kl


def _scores_and_labels(normal: Tensor, anomalous: Tensor) -> tuple[np.ndarray, np.ndarray]:
    for name, t in (("normal", normal), ("anomalous", anomalous)):
        if not isinstance(t, Tensor) or t.dim() != 1 or len(t) == 0:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected a non-empty 1-D tensor of scores, got {shape}")
    scores = torch.cat([normal.detach().double().cpu(), anomalous.detach().double().cpu()]).numpy()
    labels = np.concatenate([np.zeros(len(normal)), np.ones(len(anomalous))])
    return scores, labels


def auroc(normal: Tensor, anomalous: Tensor) -> float:
    """Area under the ROC curve when a *higher* score means "anomalous".

    It equals the probability that a random anomalous image scores higher than
    a random normal one (ties count one half): 1 is perfect, 0.5 is chance,
    below 0.5 the score ranks the two sets the wrong way round.

    Args:
        normal, anomalous: ``(n_normal,)`` and ``(n_anomalous,)`` scores.
    Returns:
        a float in [0, 1] (scikit-learn's ``roc_auc_score``).
    """
    from sklearn.metrics import roc_auc_score

    scores, labels = _scores_and_labels(normal, anomalous)
    return float(roc_auc_score(labels, scores))


def roc(normal: Tensor, anomalous: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve: false-positive rate and true-positive rate arrays (same length)
    as the threshold on the score sweeps from high to low (scikit-learn's ``roc_curve``)."""
    from sklearn.metrics import roc_curve

    scores, labels = _scores_and_labels(normal, anomalous)
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


# ------------------------------------------------------------ a small classifier


class SmallClassifier(nn.Module):
    """A small CNN for 28×28 digits: two 3×3 conv + max-pool blocks (16 and 32
    channels, 28→14→7), then 1568 → 64 → 10 logits, with dropout."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, 1, 28, 28)`` images → ``(batch, num_classes)`` logits."""
        return self.net(x)


Augment = Callable[[Tensor, Tensor, torch.Generator], "tuple[Tensor, Tensor]"]


def train_classifier(
    x: Tensor,
    y: Tensor,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 1e-3,
    augment: Augment | None = None,
    seed: int = 0,
    bar: bool | Any = False,
) -> SmallClassifier:
    """Train a :class:`SmallClassifier` on ``(x, y)`` with Adam for ``steps`` minibatches.

    Args:
        x: ``(n, 1, 28, 28)`` images in [0, 1]; y: ``(n,)`` integer labels.
        augment: optional ``augment(xb, yb, generator) -> (xb', yb')`` applied to
            every minibatch; it may change the images (shifts) or add new
            labelled images (samples from a generative model).
        seed: seeds the weights, the minibatches and the augmentation.
        bar: ``False`` trains silently; ``True`` shows a progress bar over the
            steps; an open bar of :func:`vae_course.progress.progress` is advanced
            by one per step, so that several trainings can share one bar.
    Returns:
        the trained classifier, in eval mode.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = SmallClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    own_bar = progress(total=steps, desc="classifier", unit="step", leave=False) if bar is True else None
    shared = own_bar if bar is True else (None if bar is False or bar is None else bar)
    model.train()
    try:
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb, yb = augment(xb, yb, gen)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if shared is not None:  # one step at a time: a bar that moves every fraction of a second
                shared.update(1)
    finally:
        if own_bar is not None:
            own_bar.close()
    return model.eval()


@torch.inference_mode()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2000) -> float:
    """Fraction of ``(n, 1, 28, 28)`` images whose predicted class equals ``y`` ``(n,)``."""
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / len(x)


def shift_images(x: Tensor, max_shift: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Translate every image by its own random whole-pixel offset in
    ``[-max_shift, max_shift]`` along each axis, filling with 0 (black).

    Args:
        x: ``(n, 1, 28, 28)``.
    Returns:
        ``(n, 1, 28, 28)``, the same digits moved a little — "plain" augmentation.
    """
    n, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))[:, 0]  # (n, h + 2s, w + 2s)
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (n, 1, w)
    return padded[torch.arange(n)[:, None, None], rows, cols].unsqueeze(1)


def mean_ci(values: Tensor | list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of a Student-t confidence interval over independent runs.

    Args:
        values: ``(runs,)`` one number per run (e.g. a test accuracy per seed), ``runs >= 2``.
    Returns:
        ``(mean, half_width)``: the interval is ``mean ± half_width``.
    """
    from scipy import stats

    v = torch.as_tensor(values, dtype=torch.float64)
    if v.dim() != 1 or len(v) < 2:
        raise ValueError(f"values: need at least two runs, got shape {tuple(v.shape)}")
    sem = v.std(unbiased=True).item() / math.sqrt(len(v))
    return v.mean().item(), float(stats.t.ppf(0.5 + confidence / 2, df=len(v) - 1)) * sem


# ------------------------------------------------------------ compression


def png_bytes(image: Tensor, binary: bool = True) -> int:
    """Size in bytes of one image saved as an optimised PNG (Pillow), headers included.

    Args:
        image: ``(1, 28, 28)`` or ``(28, 28)`` with values in [0, 1].
        binary: save as a 1-bit black-and-white PNG (for binarized digits);
            otherwise as 8-bit grayscale.
    Returns:
        the file size in bytes (multiply by 8 for bits).
    """
    pixels = (image.detach().float().cpu().reshape(28, 28).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    img = Image.fromarray(pixels, mode="L")
    if binary:
        img = img.point(lambda p: 255 if p >= 128 else 0).convert("1")
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.tell()


@torch.no_grad()
def lossy_code(
    model: nn.Module,
    x: Tensor,
    dims: Tensor | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 2000,
) -> dict[str, Tensor]:
    """The VAE as a lossy code: send one sample ``z ~ q(z|x)``, decode what was sent.

    The sender draws ``z ~ q(z|x)`` and transmits its coordinates ``dims``; with
    randomness shared with the receiver, *relative-entropy coding* sends such a
    sample in about ``KL(q(z_d|x) || p(z_d))`` nats (Flamich, Havasi &
    Hernández-Lobato 2020), so that KL, summed over the dimensions sent, is the
    rate. The receiver sets the other coordinates to the prior mean 0, decodes
    the ``z`` it has, and reads each pixel as on where its probability is above ½.
    Rate and error therefore describe the same transmitted code.

    Args:
        model: a VAE (``encode``/``decode`` of logits) for binary images.
        x: ``(n, 1, 28, 28)`` binary images.
        dims: indices of the latent dimensions sent (default: all of them).
        generator: the sender's noise ``eps`` for ``z = mu + sigma * eps``, drawn
            for every dimension, so that the codes for different ``dims`` share it.
    Returns:
        ``rate_bits`` ``(n,)``: the KL of the dimensions sent, in bits;
        ``wrong`` ``(n,)``: the fraction of each image's pixels decoded wrong.
    """
    mu, logvar = posterior_params(model, x, batch_size=batch_size)
    keep = torch.zeros(mu.shape[1], dtype=torch.bool)
    keep[slice(None) if dims is None else torch.as_tensor(dims, dtype=torch.long)] = True
    eps = torch.randn(mu.shape, generator=generator)
    z = torch.where(keep, mu + torch.exp(0.5 * logvar) * eps, torch.zeros_like(mu))
    wrong = []
    with eval_mode(model):
        for (zb, _), (xb, _) in zip(batches(z, None, batch_size, device_of(model)), batches(x, None, batch_size)):
            decoded = (torch.sigmoid(model.decode(zb)) > 0.5).float().cpu()
            wrong.append((decoded != (xb > 0.5).float()).float().flatten(1).mean(1))
    rate = kl_per_dimension(mu, logvar)[:, keep].sum(1)
    return {"rate_bits": nats_to_bits(rate), "wrong": torch.cat(wrong)}


# ------------------------------------------------------------ corruptions


def flip_pixels(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Salt-and-pepper noise for binary images: each pixel flips (0 ↔ 1) with probability ``p``.

    Args:
        x: ``(n, 1, 28, 28)`` binary images; p: in [0, 1].
    Returns:
        the noisy images, same shape.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p: a probability in [0, 1], got {p!r}")
    flip = torch.rand(x.shape, generator=generator) < p
    return torch.where(flip.to(x.device), 1 - x, x)


def occlude(x: Tensor, top: int, left: int, size: int, value: float = 0.0) -> Tensor:
    """Cover a ``size × size`` square whose top-left pixel is ``(top, left)`` with ``value``.

    Args:
        x: ``(n, 1, 28, 28)``.
    Returns:
        a copy of ``x`` with the square blanked out (the same square in every image).
    """
    if size < 1 or not (0 <= top < 28 and 0 <= left < 28):
        raise ValueError(f"occlude: the square must start inside the image, got top={top}, left={left}, size={size}")
    out = x.clone()
    out[..., top : top + size, left : left + size] = value
    return out


@torch.no_grad()
def impute(model: nn.Module, x: Tensor, observed: Tensor, steps: int = 10) -> Tensor:
    """Fill in the unobserved pixels of ``x`` by repeated reconstruction.

    Start with the missing pixels at 0; then, ``steps`` times, reconstruct the
    current images (decoder mean at the posterior mean ``z = mu``) and copy the
    reconstruction into the *missing* pixels only, keeping the observed ones.
    (A deterministic variant of the imputation chain of Rezende et al. 2014.)

    Args:
        x: ``(n, 1, 28, 28)`` images (values at missing pixels are ignored).
        observed: same shape, 1 (or True) where the pixel is known, 0 where missing.
        steps: number of reconstruct-and-copy rounds (``steps >= 1``).
    Returns:
        ``(n, 1, 28, 28)`` images: the observed pixels of ``x`` and, elsewhere,
        the model's pixel probabilities.
    """
    if steps < 1:
        raise ValueError(f"steps: must be at least 1, got {steps}")
    keep = observed.to(x.dtype)
    device = device_of(model)
    current = x * keep
    with eval_mode(model):
        for _ in range(steps):
            mu, _ = model.encode(current.to(device))
            filled = torch.sigmoid(model.decode(mu)).cpu().to(x.dtype)
            current = keep * x + (1 - keep) * filled
    return current
