"""A latent-variable model small enough to solve exactly: the linear-Gaussian model.

Notebook 2 uses it to check the ELBO numerically, because here *everything*
the VAE has to approximate is known in closed form:

* prior          ``p(z) = N(0, I_k)``,
* likelihood     ``p(x | z) = N(W z + b, sigma^2 I_d)``,
* evidence       ``p(x) = N(b, W W^T + sigma^2 I_d)``   (probabilistic PCA),
* posterior      ``p(z | x) = N(m*, S*)`` with
  ``S* = (I_k + W^T W / sigma^2)^-1`` and ``m* = S* W^T (x - b) / sigma^2``.

For a Gaussian guess ``q(z) = N(m, S)`` the ELBO is closed form too, so one can
verify ``log p(x) = ELBO(q) + KL(q || p(z|x))`` to many digits.

Shapes: ``x`` is ``(batch, d)``, ``z`` and the means of ``q`` are ``(batch, k)``,
covariances are ``(k, k)`` (shared by the batch) or ``(batch, k, k)``.
Every log-density, ELBO and KL is **per example**, shape ``(batch,)``, in
**nats**. Computations run in float64 so identities hold to ~1e-10.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LinearGaussian", "gaussian_log_density", "diag_gaussian_log_density", "gaussian_kl_full"]


def _batch_cov(cov: Tensor, batch: int, k: int) -> Tensor:
    """Broadcast a ``(k, k)`` or ``(batch, k, k)`` covariance to ``(batch, k, k)``."""
    if cov.dim() == 2:
        cov = cov.expand(batch, *cov.shape)
    if cov.dim() != 3 or tuple(cov.shape) != (batch, k, k):
        raise ValueError(f"cov: expected shape ({k}, {k}) or ({batch}, {k}, {k}), got {tuple(cov.shape)}")
    return cov


def gaussian_log_density(x: Tensor, mean: Tensor, cov: Tensor) -> Tensor:
    """``log N(x; mean, cov)`` for a full covariance, per example.

    ``-1/2 [ (x-mean)^T cov^-1 (x-mean) + log det(2 pi cov) ]``, computed with a
    Cholesky factor (never an explicit inverse).

    Args:
        x, mean: ``(batch, n)``.
        cov: ``(n, n)`` or ``(batch, n, n)``, symmetric positive definite.
    Returns:
        ``(batch,)`` in nats.
    """
    if x.shape != mean.shape or x.dim() != 2:
        raise ValueError(f"x and mean: expected equal shapes (batch, n), got {tuple(x.shape)} and {tuple(mean.shape)}")
    cov = _batch_cov(cov, len(x), x.shape[-1])
    chol = torch.linalg.cholesky(cov)
    diff = (x - mean).unsqueeze(-1)  # (batch, n, 1)
    white = torch.linalg.solve_triangular(chol, diff, upper=False).squeeze(-1)  # L^-1 (x - mean)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    n = x.shape[-1]
    return -0.5 * (white.pow(2).sum(-1) + log_det + n * math.log(2 * math.pi))


def diag_gaussian_log_density(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """``log N(x; mu, diag(exp(logvar)))`` per example: the encoder's ``q(z|x)`` density.

    ``-1/2 sum_j [ log(2 pi) + logvar_j + (x_j - mu_j)^2 / exp(logvar_j) ]``.

    Args:
        x, mu, logvar: ``(batch, n)`` (``logvar`` is ``log sigma^2``).
    Returns:
        ``(batch,)`` in nats.
    """
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu).pow(2) / logvar.exp()).sum(-1)


def gaussian_kl_full(mean_q: Tensor, cov_q: Tensor, mean_p: Tensor, cov_p: Tensor) -> Tensor:
    """``KL(N(mean_q, cov_q) || N(mean_p, cov_p))`` for full covariances, per example.

    ``1/2 [ tr(cov_p^-1 cov_q) + (m_p - m_q)^T cov_p^-1 (m_p - m_q) - k + log det cov_p - log det cov_q ]``.

    Args:
        mean_q, mean_p: ``(batch, k)``.
        cov_q, cov_p: ``(k, k)`` or ``(batch, k, k)``.
    Returns:
        ``(batch,)`` in nats, ``>= 0``, zero only when the two Gaussians are equal.
    """
    batch, k = mean_q.shape
    cov_q, cov_p = _batch_cov(cov_q, batch, k), _batch_cov(cov_p, batch, k)
    chol_p = torch.linalg.cholesky(cov_p)
    trace = torch.cholesky_solve(cov_q, chol_p).diagonal(dim1=-2, dim2=-1).sum(-1)
    diff = (mean_p - mean_q).unsqueeze(-1)
    maha = torch.linalg.solve_triangular(chol_p, diff, upper=False).squeeze(-1).pow(2).sum(-1)
    logdet_p = 2 * torch.log(torch.diagonal(chol_p, dim1=-2, dim2=-1)).sum(-1)
    logdet_q = torch.linalg.slogdet(cov_q).logabsdet
    return 0.5 * (trace + maha - k + logdet_p - logdet_q)


@dataclass
class LinearGaussian:
    """``z ~ N(0, I_k)``, ``x | z ~ N(W z + b, sigma^2 I_d)``.

    Attributes:
        W: ``(d, k)`` loading matrix (the "decoder").
        b: ``(d,)`` offset.
        sigma: observation noise standard deviation (> 0), in the units of ``x``.
    """

    W: Tensor
    b: Tensor
    sigma: float

    def __post_init__(self) -> None:
        self.W = torch.as_tensor(self.W, dtype=torch.float64)
        self.b = torch.as_tensor(self.b, dtype=torch.float64)
        if self.W.dim() != 2 or self.b.shape != (self.W.shape[0],):
            raise ValueError(f"W must be (d, k) and b (d,), got {tuple(self.W.shape)} and {tuple(self.b.shape)}")
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f"sigma: must be a positive number, got {self.sigma!r}")
        self.sigma = float(self.sigma)

    @classmethod
    def random(cls, d: int = 5, k: int = 2, sigma: float = 0.5, seed: int = 0) -> "LinearGaussian":
        """A model with ``W, b ~ N(0, 1)`` entries drawn from a seeded generator."""
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randn(d, k, generator=g, dtype=torch.float64),
                   torch.randn(d, generator=g, dtype=torch.float64), sigma)

    @property
    def d(self) -> int:
        return self.W.shape[0]

    @property
    def k(self) -> int:
        return self.W.shape[1]

    # ------------------------------------------------------------- the model
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: ``z ~ p(z)``, then ``x ~ p(x|z)``; returns ``(x (n, d), z (n, k))``."""
        z = torch.randn(n, self.k, generator=generator, dtype=torch.float64)
        noise = torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + self.sigma * noise, z

    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z) = log N(z; 0, I)``, ``(batch,)`` nats."""
        return -0.5 * (z.pow(2).sum(-1) + self.k * math.log(2 * math.pi))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x|z) = log N(x; W z + b, sigma^2 I)``; ``x (batch, d)``, ``z (batch, k)`` or
        ``(samples, batch, k)`` -> ``(batch,)`` or ``(samples, batch)`` nats."""
        sq = (x - z @ self.W.T - self.b).pow(2).sum(-1)
        return -0.5 * (sq / self.sigma**2 + self.d * math.log(2 * math.pi * self.sigma**2))

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x, z) = log p(x|z) + log p(z)``."""
        return self.log_likelihood(x, z) + self.log_prior(z)

    def marginal_cov(self) -> Tensor:
        """``Cov[x] = W W^T + sigma^2 I``, ``(d, d)``."""
        return self.W @ self.W.T + self.sigma**2 * torch.eye(self.d, dtype=torch.float64)

    def log_marginal(self, x: Tensor) -> Tensor:
        """The evidence ``log p(x) = log N(x; b, W W^T + sigma^2 I)``, ``(batch,)`` nats."""
        x = x.to(torch.float64)
        return gaussian_log_density(x, self.b.expand_as(x), self.marginal_cov())

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The exact ``p(z|x) = N(mean, cov)``: ``mean (batch, k)``, ``cov (k, k)``
        (the same for every ``x`` in this model)."""
        x = x.to(torch.float64)
        precision = torch.eye(self.k, dtype=torch.float64) + self.W.T @ self.W / self.sigma**2
        cov = torch.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)  # exactly symmetric, for Cholesky
        mean = (x - self.b) @ self.W @ cov / self.sigma**2  # rows: S* W^T (x - b) / sigma^2
        return mean, cov

    # ------------------------------------------------------------------ ELBO
    def expected_log_likelihood(self, x: Tensor, q_mean: Tensor, q_cov: Tensor) -> Tensor:
        """``E_q[log p(x|z)]`` in closed form: the reconstruction term, ``(batch,)`` nats.

        ``-1/(2 sigma^2) [ ||x - W m - b||^2 + tr(W S W^T) ] - (d/2) log(2 pi sigma^2)``.
        """
        x, q_mean = x.to(torch.float64), q_mean.to(torch.float64)
        q_cov = _batch_cov(q_cov.to(torch.float64), len(x), self.k)
        sq = (x - q_mean @ self.W.T - self.b).pow(2).sum(-1)
        spread = (self.W @ q_cov @ self.W.T).diagonal(dim1=-2, dim2=-1).sum(-1)  # tr(W S W^T)
        return -0.5 * ((sq + spread) / self.sigma**2 + self.d * math.log(2 * math.pi * self.sigma**2))

    def kl_to_prior(self, q_mean: Tensor, q_cov: Tensor) -> Tensor:
        """``KL(q || p(z))`` with ``p(z) = N(0, I)``: the KL term of the ELBO, ``(batch,)`` nats."""
        q_mean = q_mean.to(torch.float64)
        eye = torch.eye(self.k, dtype=torch.float64)
        return gaussian_kl_full(q_mean, q_cov.to(torch.float64), torch.zeros_like(q_mean), eye)

    def elbo(self, x: Tensor, q_mean: Tensor, q_cov: Tensor) -> Tensor:
        """The closed-form ELBO for ``q(z) = N(q_mean, q_cov)``, ``(batch,)`` nats:
        ``E_q[log p(x|z)] - KL(q || p(z))``. Always ``<= log_marginal(x)``."""
        return self.expected_log_likelihood(x, q_mean, q_cov) - self.kl_to_prior(q_mean, q_cov)

    def gap(self, x: Tensor, q_mean: Tensor, q_cov: Tensor) -> Tensor:
        """``KL(q || p(z|x))``, computed directly from the exact posterior, ``(batch,)`` nats.
        The identity ``log p(x) = elbo + gap`` is what notebook 2 checks."""
        post_mean, post_cov = self.posterior(x)
        return gaussian_kl_full(q_mean.to(torch.float64), q_cov.to(torch.float64), post_mean, post_cov)

    def elbo_monte_carlo(self, x: Tensor, q_mean: Tensor, q_cov: Tensor, n_samples: int,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Monte Carlo ELBO ``mean_s [log p(x, z_s) - log q(z_s)]``, ``z_s ~ q``.

        Returns ``(estimate, standard_error)``, each ``(batch,)`` nats; the true ELBO
        lies within a few standard errors of the estimate.
        """
        if not isinstance(n_samples, int) or n_samples < 2:
            raise ValueError(f"n_samples: need an integer >= 2 for a standard error, got {n_samples!r}")
        x, q_mean = x.to(torch.float64), q_mean.to(torch.float64)
        q_cov = _batch_cov(q_cov.to(torch.float64), len(x), self.k)
        chol = torch.linalg.cholesky(q_cov)  # (batch, k, k)
        eps = torch.randn(n_samples, *q_mean.shape, generator=generator, dtype=torch.float64)
        z = q_mean + torch.einsum("bij,sbj->sbi", chol, eps)  # reparameterized: z = m + L eps
        # log q(z) for z = m + L eps: the whitened point L^-1 (z - m) is eps itself, and log det S = 2 sum log L_jj.
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (batch,)
        log_q = -0.5 * (eps.pow(2).sum(-1) + log_det + self.k * math.log(2 * math.pi))  # (samples, batch)
        terms = self.log_joint(x, z) - log_q
        return terms.mean(0), terms.std(0, unbiased=True) / math.sqrt(n_samples)
