"""Looking inside a trained VAE: posterior collapse and the rate–distortion view.

Notebook 8 uses these to answer two questions about a trained model:

* **Which latent dimensions does it use?** A dimension ``u`` is *active* when
  its posterior mean moves with the input: ``Cov_x(E_q[z_u | x]) > 0.01``
  (Burda, Grosse & Salakhutdinov 2015, section 5.2). An inactive dimension has
  ``q(z_u | x) ≈ p(z_u)`` for every ``x``: its KL is ~0 nats and the decoder
  ignores it — the dimension has *collapsed* to the prior.
* **How is the ELBO split?** Its two terms are the *rate* (the KL, nats of
  information the code carries about ``x``) and the *distortion* (the
  reconstruction term, nats): ``-ELBO = distortion + rate`` (Alemi et al. 2018).

Every value is per example and in nats unless a name says ``bits``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .evaluate import per_example_terms
from .inference import batches, device_of, eval_mode
from .losses import kl_per_dimension

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2015): active when Cov_x(E_q[z_u]) > 10^-2


@torch.inference_mode()
def posterior_params(
    model: nn.Module, x: Tensor, y: Tensor | None = None, batch_size: int = 2000
) -> tuple[Tensor, Tensor]:
    """The encoder's ``(mu, logvar)`` for every image, in batches, on the CPU.

    Args:
        model: a variational model (``encode(x, y) -> (mu, logvar)``).
        x: ``(n, 1, 28, 28)`` images; ``y``: optional ``(n,)`` labels (CVAE).
    Returns:
        ``mu`` and ``logvar``, each ``(n, latent_dim)`` float32.
    """
    if not getattr(model, "is_variational", False):
        raise TypeError("model: expected a variational model with encode(x, y) -> (mu, logvar)")
    mus, logvars = [], []
    with eval_mode(model):
        for xb, yb in batches(x, y, batch_size, device_of(model)):
            mu, logvar = model.encode(xb, yb)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
    return torch.cat(mus), torch.cat(logvars)


def activity(mu: Tensor) -> Tensor:
    """``Cov_x(E_q[z_u | x])`` for each dimension ``u``: the variance, over the
    data, of the posterior means (the unbiased sample variance).

    Args:
        mu: ``(n, latent_dim)`` posterior means of ``n >= 2`` inputs.
    Returns:
        ``(latent_dim,)``, in squared latent units. Near 0: the code of that
        dimension is the same whatever the input — it carries no information.
    """
    if not isinstance(mu, Tensor) or mu.dim() != 2 or len(mu) < 2:
        shape = tuple(mu.shape) if isinstance(mu, Tensor) else type(mu).__name__
        raise ValueError(f"mu: expected posterior means of shape (n >= 2, latent_dim), got {shape}")
    return mu.float().var(dim=0)


def active_units(mu: Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """How many latent dimensions are active: ``activity(mu) > threshold``.

    Args:
        mu: ``(n, latent_dim)`` posterior means.
        threshold: Burda et al.'s 0.01 by default.
    Returns:
        an integer between 0 and ``latent_dim``.
    """
    return int((activity(mu) > threshold).sum())


def mean_kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """The KL of each latent dimension averaged over the data, ``(latent_dim,)``, nats.

    Summing it gives the average KL (the rate). A collapsed dimension has ~0.
    """
    return kl_per_dimension(mu, logvar).mean(dim=0)


def collapse_summary(
    model: nn.Module, x: Tensor, y: Tensor | None = None, threshold: float = ACTIVE_THRESHOLD
) -> dict[str, object]:
    """Everything notebook 8 reports about posterior collapse, for one model.

    Args:
        x: ``(n, 1, 28, 28)`` evaluation images (``y``: labels for a CVAE).
    Returns:
        ``latent_dim``; ``active_units`` (int); ``activity`` ``(latent_dim,)``;
        ``kl_per_dim`` ``(latent_dim,)`` in nats; ``kl`` (their sum, nats);
        ``kl_active_share``, the fraction of the KL carried by active units.
    """
    mu, logvar = posterior_params(model, x, y)
    act = activity(mu)
    kl_dim = mean_kl_per_dimension(mu, logvar)
    total = float(kl_dim.sum())
    active = act > threshold
    return {
        "latent_dim": mu.shape[1],
        "active_units": int(active.sum()),
        "activity": act,
        "kl_per_dim": kl_dim,
        "kl": total,
        "kl_active_share": float(kl_dim[active].sum()) / total if total > 0 else float("nan"),
    }


def nats_to_bits(nats: Tensor | float) -> Tensor | float:
    """Convert nats to bits: divide by ``ln 2`` (1 nat ≈ 1.4427 bits)."""
    return nats / math.log(2)


def rate_distortion(model: nn.Module, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
    """The two terms of the ELBO, averaged over ``x`` (one posterior sample per image).

    Returns ``rate`` (mean KL, nats), ``distortion`` (mean reconstruction term
    ``-log p(x|z)``, nats), ``elbo`` (``-(rate + distortion)``, nats) and
    ``rate_bits`` (the rate in bits). These are the beta = 1 quantities,
    whatever beta the model was trained with.
    """
    recon, kl = per_example_terms(model, x, y)
    rate, distortion = kl.double().mean().item(), recon.double().mean().item()
    return {"rate": rate, "distortion": distortion, "elbo": -(rate + distortion),
            "rate_bits": nats_to_bits(rate)}
