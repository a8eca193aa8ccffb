"""Instant checks for the exercises.

Pass your function to the matching check, e.g. ``check_kl(my_kl)``. The check
runs it on several inputs, compares values, shapes and (where it matters)
gradients with the package's reference, and prints a verdict:

* ``✅`` — correct;
* ``❌`` — wrong, with a hint naming the usual mistake when it recognises one
  (a sign error, a mean instead of a sum, the variance used as a log-variance,
  a missing ½ ...);
* ``⏳ not attempted yet`` — your function still returns ``None``. This never
  raises, so a notebook still runs from top to bottom.

Each check returns ``True`` / ``False`` / ``None`` (not attempted), so tests can
use them too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from . import losses


@dataclass
class Variant:
    """A known wrong answer: how it is computed and what to tell the learner."""

    name: str
    fn: Callable[..., Any]
    hint: str


def _as_tensor(out: Any) -> Tensor | None:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (int, float)):
        return torch.tensor(float(out))
    return None


def _close(a: Tensor, b: Tensor, rtol: float, atol: float, equal_nan: bool = False) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=equal_nan)


def _clone_args(args: Sequence[Any], grad: bool) -> list[Any]:
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.is_floating_point():
            a = a.detach().clone().requires_grad_(grad)
        out.append(a)
    return out


def _grads(fn: Callable, args: Sequence[Any], seed: int | None) -> tuple[Tensor | None, list[Tensor | None]]:
    """Run ``fn`` on fresh copies of ``args`` and return (output, d sum(output) / d args)."""
    inputs = _clone_args(args, grad=True)
    if seed is not None:
        torch.manual_seed(seed)
    out = _as_tensor(fn(*inputs))
    if out is None or not out.requires_grad:
        return out, [None for _ in inputs]
    grads = torch.autograd.grad(out.sum(), [a for a in inputs if isinstance(a, Tensor) and a.requires_grad],
                                allow_unused=True)
    return out.detach(), list(grads)


def run_check(
    title: str,
    fn: Callable[..., Any] | None,
    reference: Callable[..., Any],
    cases: Sequence[Sequence[Any]],
    variants: Sequence[Variant] = (),
    check_grad: bool = False,
    seed: int | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> bool | None:
    """Compare ``fn`` with ``reference`` on every input in ``cases``; print a verdict.

    ``seed`` re-seeds torch before each call, so functions that draw random
    numbers (like ``reparameterize``) can be compared exactly.
    """
    if fn is None:
        print(f"⏳ {title}: not attempted yet — fill in the function above, then re-run this cell.")
        return None
    if not callable(fn):
        print(f"❌ {title}: expected a function, got {type(fn).__name__}.")
        return False
    outputs = []
    for args in cases:
        try:
            if seed is not None:
                torch.manual_seed(seed)
            raw = fn(*_clone_args(args, grad=False))
        except Exception as err:  # the learner's code may fail in any way
            print(f"❌ {title}: your function raised {type(err).__name__}: {err}")
            return False
        if raw is None:
            print(f"⏳ {title}: not attempted yet — your function returns None.")
            return None
        out = _as_tensor(raw)
        if out is None:
            print(f"❌ {title}: expected a tensor, got {type(raw).__name__}.")
            return False
        outputs.append(out.detach())
    expected = []
    for args in cases:
        if seed is not None:
            torch.manual_seed(seed)
        expected.append(_as_tensor(reference(*_clone_args(args, grad=False))).detach())
    for out, ref in zip(outputs, expected):
        if out.shape != ref.shape:
            hint = _recognise(outputs, cases, variants, seed, rtol, atol)
            print(f"❌ {title}: output shape {tuple(out.shape)}, expected {tuple(ref.shape)}. {hint}")
            return False
        if not _close(out, ref, rtol, atol):
            hint = _recognise(outputs, cases, variants, seed, rtol, atol)
            print(f"❌ {title}: the values are wrong. {hint}".rstrip())
            return False
    if check_grad:
        for args in cases:
            _, got = _grads(fn, args, seed)
            _, want = _grads(reference, args, seed)
            for g, w in zip(got, want):
                if w is not None and (g is None or not _close(g, w, rtol, atol)):
                    print(f"❌ {title}: the values are right but the gradients are not — did you use "
                          f".detach(), .item(), .sample() or a non-differentiable step?")
                    return False
    print(f"✅ {title}: correct on {len(cases)} test inputs" + (" (values and gradients)." if check_grad else "."))
    return True


def _recognise(outputs, cases, variants, seed, rtol, atol) -> str:
    for v in variants:
        try:
            matches = True
            for out, args in zip(outputs, cases):
                if seed is not None:
                    torch.manual_seed(seed)
                wrong = _as_tensor(v.fn(*_clone_args(args, grad=False)))
                if wrong is None or not _close(out, wrong.detach(), rtol, atol, equal_nan=True):
                    matches = False
                    break
        except Exception:
            matches = False
        if matches:
            return f"Hint ({v.name}): {v.hint}"
    return "Compare your code with the formula above, term by term."


# ----------------------------------------------------------------- test inputs
def _mu_logvar_cases() -> list[tuple[Tensor, Tensor]]:
    """Fixed, varied inputs: batches of different sizes, zero, negative and large values."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, dim in ((4, 3), (7, 20), (1, 1)):
        mu = torch.randn(batch, dim, generator=g) * 1.5
        logvar = torch.randn(batch, dim, generator=g) * 1.2
        cases.append((mu, logvar))
    cases.append((torch.zeros(2, 5), torch.zeros(2, 5)))  # q = prior: KL must be 0
    return cases


def _image_cases() -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for batch in (3, 5):
        logits = torch.randn(batch, 1, 28, 28, generator=g) * 3
        x = torch.rand(batch, 1, 28, 28, generator=g)
        cases.append((logits, x))
    x_bin = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3), generator=g)
    cases.append((torch.randn(4, 1, 28, 28, generator=g), x_bin))
    return cases


# ---------------------------------------------------------------------- checks
def check_reparameterize(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(mu, logvar) -> z`` (the reparameterization trick), with ``torch.randn_like`` noise."""

    def reference(mu: Tensor, logvar: Tensor) -> Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    variants = [
        Variant("variance instead of standard deviation", lambda m, lv: m + torch.exp(lv) * torch.randn_like(m),
                "sigma = exp(logvar / 2); exp(logvar) is the variance sigma^2."),
        Variant("log-variance used as sigma", lambda m, lv: m + lv * torch.randn_like(m),
                "logvar is log sigma^2, not sigma: use torch.exp(0.5 * logvar)."),
        Variant("no noise", lambda m, lv: m + torch.exp(0.5 * lv),
                "multiply sigma by eps = torch.randn_like(mu): without noise z is not a sample."),
    ]
    return run_check("reparameterize", fn, reference, _mu_logvar_cases(), variants, check_grad=True, seed=0)


def check_kl(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(mu, logvar) -> (batch,)``: KL(N(mu, sigma^2) || N(0, I)) summed over dimensions."""

    def term(mu, logvar):
        return 1 + logvar - mu.pow(2) - logvar.exp()

    variants = [
        Variant("sign error", lambda m, lv: 0.5 * term(m, lv).sum(-1),
                "the KL is -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2); yours has the opposite sign."),
        Variant("mean instead of sum", lambda m, lv: -0.5 * term(m, lv).mean(-1),
                "sum over the latent dimensions (dim=-1), don't average: each dimension adds its own KL."),
        Variant("summed over the batch too", lambda m, lv: -0.5 * term(m, lv).sum(),
                "return one KL per example, shape (batch,): sum over dim=-1 only."),
        Variant("variance used as log-variance", lambda m, lv: -0.5 * (1 + torch.log(lv) - m.pow(2) - lv).sum(-1),
                "the second argument is already log sigma^2: use it as is, and sigma^2 = logvar.exp()."),
        Variant("missing 1/2", lambda m, lv: -term(m, lv).sum(-1), "don't forget the factor -1/2 in front."),
        Variant("missing the 1", lambda m, lv: -0.5 * (lv - m.pow(2) - lv.exp()).sum(-1),
                "the formula starts with 1 + ...: without it the KL of q = prior is not 0."),
    ]
    return run_check("kl_divergence", fn, losses.kl_divergence, _mu_logvar_cases(), variants, check_grad=True)


def check_gaussian_kl(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(mu_q, logvar_q, mu_p, logvar_p) -> (batch,)``, the general diagonal-Gaussian KL."""
    g = torch.Generator().manual_seed(2)
    cases = [(m, lv, torch.randn(m.shape, generator=g), torch.randn(m.shape, generator=g))
             for m, lv in _mu_logvar_cases()]

    def swapped(mq, lq, mp, lp):
        return losses.gaussian_kl(mp, lp, mq, lq)

    variants = [
        Variant("arguments swapped", swapped,
                "KL is not symmetric: KL(q || p) puts var_q and (mu_q - mu_p)^2 over var_p."),
        Variant("missing 1/2", lambda *a: 2 * losses.gaussian_kl(*a), "don't forget the factor 1/2."),
        Variant("mean instead of sum", lambda *a: losses.gaussian_kl(*a) / a[0].shape[-1],
                "sum over the latent dimensions, don't average."),
    ]
    return run_check("gaussian_kl", fn, losses.gaussian_kl, cases, variants, check_grad=True)


def check_bernoulli_nll(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(logits, x) -> (batch,)``: binary cross-entropy summed over pixels."""
    variants = [
        Variant("mean over pixels", lambda lg, x: losses.bernoulli_nll(lg, x) / 784,
                "sum over the 784 pixels (reduction='sum' per example), don't average them."),
        Variant("sigmoid applied twice",
                lambda lg, x: losses.bernoulli_nll(torch.sigmoid(lg), x),
                "the decoder returns logits: use binary_cross_entropy_with_logits on them directly."),
        Variant("summed over the batch", lambda lg, x: losses.bernoulli_nll(lg, x).sum(),
                "return one number per example, shape (batch,)."),
        Variant("sign error", lambda lg, x: -losses.bernoulli_nll(lg, x),
                "a negative log-likelihood is positive: -log p(x|z) >= 0 for binary pixels."),
    ]
    return run_check("bernoulli_nll", fn, losses.bernoulli_nll, _image_cases(), variants, check_grad=True)


def check_gaussian_nll(fn: Callable[[Tensor, Tensor], Tensor] | None, sigma: float = math.sqrt(0.5)) -> bool | None:
    """Check ``fn(x_hat, x) -> (batch,)``: ``-log N(x; x_hat, sigma^2 I)`` with the default sigma^2 = 1/2."""
    cases = [(torch.sigmoid(lg), x) for lg, x in _image_cases()]
    ref = lambda xh, x: losses.gaussian_nll(xh, x, sigma)  # noqa: E731
    d_const = lambda x: 0.5 * x[0].numel() * math.log(2 * math.pi * sigma**2)  # noqa: E731
    variants = [
        Variant("missing the constant", lambda xh, x: ref(xh, x) - d_const(x),
                "add (D/2) log(2 pi sigma^2): it does not change the gradients, but it makes the number a "
                "real negative log-likelihood."),
    ]
    if abs(sigma**2 - 0.5) > 1e-9:  # at sigma^2 = 1/2, 2 sigma^2 = 1 and this mistake changes nothing
        variants.append(Variant("missing 1/(2 sigma^2)", lambda xh, x: (x - xh).pow(2).flatten(1).sum(1) + d_const(x),
                                "divide the squared error by 2 sigma^2."))
    return run_check("gaussian_nll", fn, ref, cases, variants, check_grad=True)


def check_vae_loss(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(logits, x, mu, logvar) -> scalar``: mean over the batch of recon + KL (nats per example)."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for logits, x in _image_cases():
        mu = torch.randn(len(x), 20, generator=g)
        cases.append((logits, x, mu, torch.randn(len(x), 20, generator=g) * 0.5))

    def reference(lg, x, mu, lv):
        return losses.vae_loss(lg, x, mu, lv).loss.mean()

    def recon(lg, x):
        return losses.bernoulli_nll(lg, x)

    kl = losses.kl_divergence
    variants = [
        Variant("sum over the batch", lambda lg, x, m, lv: (recon(lg, x) + kl(m, lv)).sum(),
                "divide by the batch size (take the mean over examples): losses are in nats per example."),
        Variant("KL averaged over the batch, reconstruction summed",
                lambda lg, x, m, lv: recon(lg, x).sum() + kl(m, lv).mean(),
                "both terms need the same reduction, or the KL is weighted 1/batch_size (a classic bug)."),
        Variant("KL subtracted", lambda lg, x, m, lv: (recon(lg, x) - kl(m, lv)).mean(),
                "the loss is the *negative* ELBO = reconstruction + KL."),
        Variant("KL forgotten", lambda lg, x, m, lv: recon(lg, x).mean(),
                "add the KL term: without it this is a plain autoencoder."),
    ]
    return run_check("vae_loss", fn, reference, cases, variants, check_grad=True)


def check_iwae(fn: Callable[[Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(log_weights) -> (batch,)``: logsumexp over K minus log K."""
    g = torch.Generator().manual_seed(4)
    cases = [(torch.randn(3, k, generator=g) * 5 - 100,) for k in (1, 10, 50)]
    variants = [
        Variant("forgot - log K", lambda lw: torch.logsumexp(lw, 1),
                "subtract log K: you want the log of the *mean* of the weights."),
        Variant("mean of log-weights", lambda lw: lw.mean(1),
                "that is the ELBO (K = 1 bound); average the weights themselves, in log-space: logsumexp - log K."),
        Variant("naive exp / log", lambda lw: torch.log(torch.exp(lw).mean(1)),
                "exp(-100) underflows to 0: use torch.logsumexp, which subtracts the maximum first."),
    ]
    return run_check("iwae_log_likelihood", fn, losses.iwae_log_likelihood, cases, variants)


def check_score_function(fn: Callable[..., Tensor] | None) -> bool | None:
    """Check ``fn(f, z, mu, sigma) -> (n,)``: per-sample score-function estimates of
    ``d/dmu E_{z ~ N(mu, sigma^2)}[f(z)]``, i.e. ``f(z) * (z - mu) / sigma^2`` (notebook 3).

    ``z`` is a ``(n,)`` float64 tensor of samples, ``mu`` and ``sigma`` are floats.
    """
    from . import estimators

    g = torch.Generator().manual_seed(5)
    cases = []
    for f, mu, sigma, n in ((torch.sin, 0.3, 0.8, 6), (lambda t: t**2, -1.0, 2.0, 5), (torch.exp, 0.5, 0.3, 4)):
        z = mu + sigma * torch.randn(n, dtype=torch.float64, generator=g)
        cases.append((f, z, mu, sigma))

    def reference(f, z, mu, sigma):
        return estimators.score_function_terms(f, z, mu, sigma, "mu")

    variants = [
        Variant("divided by sigma, not sigma^2", lambda f, z, m, s: f(z) * (z - m) / s,
                "d/dmu log N(z; mu, sigma^2) = (z - mu) / sigma^2: divide by the variance."),
        Variant("sign error", lambda f, z, m, s: -f(z) * (z - m) / s**2,
                "d/dmu of -(z - mu)^2 / (2 sigma^2) is +(z - mu) / sigma^2."),
        Variant("f(z) forgotten", lambda f, z, m, s: (z - m) / s**2,
                "multiply the score by f(z): the score alone has mean 0 whatever f is."),
        Variant("mu not subtracted", lambda f, z, m, s: f(z) * z / s**2,
                "the score is (z - mu) / sigma^2: measure z from the mean."),
        Variant("averaged", lambda f, z, m, s: (f(z) * (z - m) / s**2).mean(),
                "return one estimate per sample, shape (n,): we take the mean (and the variance) afterwards."),
    ]
    return run_check("score-function estimator", fn, reference, cases, variants)


# ----------------------------------------------- notebooks 8 and 9 (appended)
def _active_unit_cases() -> list[tuple[Tensor]]:
    """Posterior means ``(n, latent_dim)`` whose dimensions have variances far from
    the 0.01 threshold: clearly active (~1), clearly dead (~1e-6) and in between
    (~0.0025, whose standard deviation 0.05 *is* above 0.01)."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for n, scales in ((200, [1.0, 0.001, 0.05, 2.0, 0.0]), (50, [0.05] * 3 + [0.5] * 2), (300, [0.3] * 7)):
        mu = torch.randn(n, len(scales), generator=g) * torch.tensor(scales) + 0.2
        cases.append((mu,))
    return cases


def check_active_units(fn: Callable[[Tensor], Any] | None) -> bool | None:
    """Check ``fn(mu) -> int``: how many columns of ``mu`` ``(n, latent_dim)`` have a
    variance over the examples above 0.01 (Burda et al.'s active units)."""

    def reference(mu: Tensor) -> Tensor:
        return (mu.var(dim=0) > 0.01).sum().float()

    variants = [
        Variant("standard deviation instead of variance", lambda mu: (mu.std(dim=0) > 0.01).sum().float(),
                "the criterion is on the variance Cov_x(E[z_u]) = mu[:, u].var(), not the standard deviation."),
        Variant("mean instead of variance", lambda mu: (mu.mean(dim=0).abs() > 0.01).sum().float(),
                "a unit is active when its posterior mean *changes* with x: use the variance over examples."),
        Variant("variance over the wrong axis", lambda mu: (mu.var(dim=1) > 0.01).sum().float(),
                "take the variance over the examples (dim=0), one number per latent dimension."),
    ]
    return run_check("active_units", fn, reference, _active_unit_cases(), variants)


def check_free_bits(fn: Callable[[Tensor, Tensor, float], Tensor] | None) -> bool | None:
    """Check ``fn(mu, logvar, free_bits) -> scalar``: the minibatch-average KL of each
    dimension clamped below at ``free_bits`` nats, summed over dimensions."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for batch, dim, lam in ((16, 6, 0.5), (9, 4, 0.25), (32, 10, 0.0)):
        mu = torch.randn(batch, dim, generator=g) * torch.linspace(0.05, 2.0, dim)
        logvar = torch.randn(batch, dim, generator=g) * 0.3 - torch.linspace(0.0, 2.0, dim)
        cases.append((mu, logvar, lam))
    # An almost-collapsed posterior whose *total* KL is under the floor too, so that
    # "clamped the total" and "no clamp" give different numbers.
    cases.append((torch.randn(8, 3, generator=g) * 0.01, torch.randn(8, 3, generator=g) * 0.01, 1.0))
    kl_dim = losses.kl_per_dimension
    variants = [
        Variant("clamped per example", lambda m, lv, lam: kl_dim(m, lv).clamp(min=lam).sum(-1).mean(),
                "average each dimension's KL over the minibatch first, then clamp: free bits act on the "
                "minibatch-average KL per dimension."),
        Variant("clamp from above", lambda m, lv, lam: kl_dim(m, lv).mean(0).clamp(max=lam).sum(),
                "the floor is a *minimum*: clamp(min=free_bits), so dimensions below it stop being pushed down."),
        Variant("no clamp", lambda m, lv, lam: kl_dim(m, lv).mean(0).sum(),
                "clamp each dimension's average KL below at free_bits before summing."),
        Variant("clamped the total", lambda m, lv, lam: kl_dim(m, lv).sum(-1).mean().clamp(min=lam),
                "the floor applies to each latent dimension separately, not to the total KL."),
    ]
    return run_check("free_bits_kl", fn, losses.free_bits_kl, cases, variants, check_grad=True)


def check_auroc(fn: Callable[[Tensor, Tensor], Any] | None) -> bool | None:
    """Check ``fn(normal_scores, anomalous_scores) -> float``: the probability that an
    anomalous score is higher than a normal one, ties counting one half (the AUROC)."""
    from .applications import auroc

    g = torch.Generator().manual_seed(7)
    cases = [
        (torch.tensor([0.0, 1.0, 2.0, 2.0]), torch.tensor([2.0, 3.0, 1.0])),  # ties
        (torch.randn(30, generator=g), torch.randn(20, generator=g) + 1.0),
        (torch.randint(0, 4, (25,), generator=g).float(), torch.randint(1, 6, (15,), generator=g).float()),
    ]

    def reference(a: Tensor, b: Tensor) -> Tensor:
        return torch.tensor(auroc(a, b))

    variants = [
        Variant("reversed", lambda a, b: torch.tensor(1 - auroc(a, b)),
                "count the pairs where the *anomalous* score is higher than the normal one."),
        Variant("ties ignored", lambda a, b: (b[:, None] > a[None, :]).double().mean(),
                "pairs with equal scores (ties) count one half."),
        Variant("ties counted fully", lambda a, b: (b[:, None] >= a[None, :]).double().mean(),
                "pairs with equal scores (ties) count one half, not one."),
    ]
    return run_check("auroc", fn, reference, cases, variants, rtol=1e-6, atol=1e-6)


def check_bits_per_dim(fn: Callable[[Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(nll_nats) -> bits_per_dim``: negative log-likelihoods ``(batch,)`` in
    nats per 28×28 image, converted to bits per pixel (784 pixels)."""
    g = torch.Generator().manual_seed(8)
    cases = [(torch.rand(5, generator=g) * 100 + 50,), (torch.tensor([0.0, 543.5]),)]
    variants = [
        Variant("nats, not bits", lambda nll: nll / 784,
                "1 bit = ln 2 nats: divide the nats by ln 2 (math.log(2)) to get bits."),
        Variant("per image, not per pixel", lambda nll: nll / math.log(2),
                "divide by the number of pixels, 784, as well."),
        Variant("multiplied by ln 2", lambda nll: nll * math.log(2) / 784,
                "bits = nats / ln 2 (there are fewer nats than bits in the same amount of information)."),
    ]
    return run_check("bits_per_dim", fn, lambda nll: nll / (784 * math.log(2)), cases, variants)


# ------------------------------------------------- notebooks 1 and 2 (appended)
def _reconstruction_cases() -> list[tuple[Tensor, Tensor]]:
    """(x_hat, x) pairs: reconstructions as probabilities and grayscale / binary targets."""
    return [(torch.sigmoid(lg), x) for lg, x in _image_cases()]


def check_squared_error(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(x_hat, x) -> (batch,)``: the seed's ``||x - x_hat||^2``, summed over pixels.

    ``x_hat`` and ``x`` are ``(batch, 1, 28, 28)`` in [0, 1]; the answer is one
    squared error per image (units: squared pixel intensity).
    """

    def reference(x_hat: Tensor, x: Tensor) -> Tensor:
        return (x - x_hat).pow(2).flatten(1).sum(1)

    variants = [
        Variant("mean over pixels", lambda xh, x: reference(xh, x) / x[0].numel(),
                "sum the squared errors over the 784 pixels; a mean divides the error by 784."),
        Variant("one number for the whole batch", lambda xh, x: reference(xh, x).sum(),
                "return one error per image, shape (batch,): sum over pixels only (x.flatten(1).sum(1))."),
        Variant("F.mse_loss with its default reduction", lambda xh, x: (x - xh).pow(2).mean(),
                "F.mse_loss averages over everything by default; use reduction='none' and sum per image."),
        Variant("absolute error", lambda xh, x: (x - xh).abs().flatten(1).sum(1),
                "square the differences: ||x - x_hat||^2 = sum of (x - x_hat)^2."),
        Variant("norm instead of squared norm", lambda xh, x: reference(xh, x).sqrt(),
                "the seed's loss is the *squared* norm: don't take the square root."),
    ]
    return run_check("squared_error", fn, reference, _reconstruction_cases(), variants, check_grad=True)


def _encoder_cases() -> list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]:
    """Images and the weights of a 784 -> hidden -> latent MLP (``nn.Linear`` layout: ``(out, in)``)."""
    g = torch.Generator().manual_seed(5)
    cases = []
    for batch, hidden, latent in ((3, 16, 2), (5, 32, 4)):
        x = torch.rand(batch, 1, 28, 28, generator=g)
        w1 = torch.randn(hidden, 784, generator=g) / 28
        b1 = torch.randn(hidden, generator=g) * 0.5
        w2 = torch.randn(latent, hidden, generator=g) / hidden**0.5
        b2 = torch.randn(latent, generator=g) * 0.5
        cases.append((x, w1, b1, w2, b2))
    return cases


def check_encoder_forward(fn: Callable[..., Tensor] | None) -> bool | None:
    """Check ``fn(x, w1, b1, w2, b2) -> z``: the autoencoder's encoder written by hand.

    ``x`` is ``(batch, 1, 28, 28)``; ``w1`` ``(hidden, 784)``, ``b1`` ``(hidden,)``,
    ``w2`` ``(latent, hidden)``, ``b2`` ``(latent,)`` as stored by ``nn.Linear``;
    ``z = relu(x_flat @ w1.T + b1) @ w2.T + b2`` is ``(batch, latent)``.
    """

    def reference(x, w1, b1, w2, b2):
        return torch.relu(x.flatten(1) @ w1.T + b1) @ w2.T + b2

    variants = [
        Variant("no ReLU", lambda x, w1, b1, w2, b2: (x.flatten(1) @ w1.T + b1) @ w2.T + b2,
                "apply torch.relu to the hidden layer: without it the two layers collapse into one linear map."),
        Variant("ReLU on the code too", lambda x, w1, b1, w2, b2: torch.relu(reference(x, w1, b1, w2, b2)),
                "no activation after the last layer: a ReLU there would forbid negative codes."),
        Variant("sigmoid instead of ReLU",
                lambda x, w1, b1, w2, b2: torch.sigmoid(x.flatten(1) @ w1.T + b1) @ w2.T + b2,
                "the package's encoder uses a ReLU (torch.relu) in the hidden layer."),
        Variant("biases forgotten", lambda x, w1, b1, w2, b2: torch.relu(x.flatten(1) @ w1.T) @ w2.T,
                "each nn.Linear computes x @ W.T + b: add the biases b1 and b2."),
    ]
    return run_check("encoder_forward", fn, reference, _encoder_cases(), variants, check_grad=True)


def check_gaussian_log_density(fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(z, mu, logvar) -> (batch,)``: ``log N(z; mu, diag(exp(logvar)))`` in nats,
    summed over the ``(batch, dim)`` inputs' last axis."""
    from .toy_models import diag_gaussian_log_density as reference

    cases = []
    g = torch.Generator().manual_seed(6)
    for mu, logvar in _mu_logvar_cases():
        cases.append((mu + torch.randn(mu.shape, generator=g) * logvar.mul(0.5).exp(), mu, logvar))
    log2pi = math.log(2 * math.pi)
    variants = [
        Variant("missing the log(2 pi) constant", lambda z, m, lv: reference(z, m, lv) + 0.5 * log2pi * z.shape[-1],
                "each dimension contributes -1/2 log(2 pi): the density must integrate to 1."),
        Variant("divided by sigma instead of sigma^2",
                lambda z, m, lv: -0.5 * (log2pi + lv + (z - m).pow(2) / lv.mul(0.5).exp()).sum(-1),
                "the squared distance is divided by the variance sigma^2 = exp(logvar), not by sigma."),
        Variant("missing the log-variance term", lambda z, m, lv: -0.5 * (log2pi + (z - m).pow(2) / lv.exp()).sum(-1),
                "add -1/2 log sigma^2 per dimension (the normaliser 1/sqrt(2 pi sigma^2))."),
        Variant("negative log-density", lambda z, m, lv: -reference(z, m, lv),
                "return the log-density itself (usually negative for spread-out Gaussians), not its negative."),
        Variant("mean over dimensions", lambda z, m, lv: reference(z, m, lv) / z.shape[-1],
                "independent dimensions multiply densities, so their log-densities add: sum over dim=-1."),
        Variant("missing 1/2", lambda z, m, lv: 2 * reference(z, m, lv), "don't forget the factor -1/2 in front."),
    ]
    return run_check("gaussian_log_density", fn, reference, cases, variants, check_grad=True)


def _toy_elbo_cases() -> list[tuple[Any, Tensor, Tensor, Tensor]]:
    from .toy_models import LinearGaussian

    cases = []
    g = torch.Generator().manual_seed(7)
    for seed, (d, k, sigma, batch) in enumerate(((5, 2, 0.5, 4), (3, 1, 1.3, 2), (8, 3, 0.2, 3))):
        model = LinearGaussian.random(d, k, sigma, seed=seed)
        x, _ = model.sample(batch, generator=g)
        q_mu = torch.randn(batch, k, generator=g, dtype=torch.float64)
        q_logvar = torch.randn(batch, k, generator=g, dtype=torch.float64) - 1
        cases.append((model, x, q_mu, q_logvar))
    return cases


def check_toy_elbo(fn: Callable[..., Tensor] | None) -> bool | None:
    """Check ``fn(model, x, q_mu, q_logvar) -> (batch,)``: the closed-form ELBO of the
    linear-Gaussian toy model (:class:`vae_course.toy_models.LinearGaussian`) for a
    diagonal ``q(z) = N(q_mu, diag(exp(q_logvar)))``, in nats.

    ``x`` is ``(batch, d)``; ``q_mu`` and ``q_logvar`` are ``(batch, k)``.
    """

    def diag_cov(lv: Tensor) -> Tensor:
        return torch.diag_embed(lv.exp())

    def reference(model, x, m, lv):
        return model.elbo(x, m, diag_cov(lv))

    def recon(model, x, m, lv):
        return model.expected_log_likelihood(x, m, diag_cov(lv))

    def plug_in(model, x, m, lv):  # log p(x | z = m): the spread term tr(W S W^T) forgotten
        return model.log_likelihood(x, m)

    def sigma_as_variance(model, x, m, lv):  # sigma written where sigma^2 belongs
        sq = (x - m @ model.W.T - model.b).pow(2).sum(-1) + (lv.exp() * model.W.pow(2).sum(0)).sum(-1)
        recon = -0.5 * (sq / model.sigma + model.d * math.log(2 * math.pi * model.sigma))
        return recon - losses.kl_divergence(m, lv)

    variants = [
        Variant("spread of q forgotten", lambda mo, x, m, lv: plug_in(mo, x, m, lv) - losses.kl_divergence(m, lv),
                "E_q[||x - Wz - b||^2] = ||x - Wm - b||^2 + tr(W S W^T): averaging over z ~ q adds the trace term."),
        Variant("KL forgotten", lambda mo, x, m, lv: recon(mo, x, m, lv),
                "subtract KL(q || p(z)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar)) from the reconstruction term."),
        Variant("KL added", lambda mo, x, m, lv: recon(mo, x, m, lv) + losses.kl_divergence(m, lv),
                "the ELBO is E_q[log p(x|z)] *minus* KL(q || p(z))."),
        Variant("sigma used as the variance", lambda mo, x, m, lv: sigma_as_variance(mo, x, m, lv),
                "the likelihood's variance is sigma^2: divide by 2 sigma^2 and use log(2 pi sigma^2)."),
    ]
    return run_check("toy_elbo", fn, reference, _toy_elbo_cases(), variants, check_grad=True)


# ------------------------------------------------ notebooks 6 and 7: sizes, slerp, q(z)
def check_conv_output_size(fn: Callable[[int, int, int, int], int] | None) -> bool | None:
    """Check ``fn(size, kernel, stride, padding) -> int``: the output size of a ``Conv2d``."""
    from .models import conv2d_output_size

    cases = [(28, 4, 2, 1), (14, 4, 2, 1), (28, 3, 1, 1), (28, 5, 2, 0), (7, 3, 2, 0), (32, 5, 3, 2)]
    variants = [
        Variant("no rounding down", lambda n, k, s, p: (n + 2 * p - k) / s + 1,
                "a kernel cannot stop half-way: round the division down (use // in Python)."),
        Variant("forgot the + 1", lambda n, k, s, p: (n + 2 * p - k) // s,
                "count the first position too: floor((n + 2p - k) / s) + 1."),
        Variant("padding on one side only", lambda n, k, s, p: (n + p - k) // s + 1,
                "padding is added on both sides: n + 2 * padding."),
        Variant("divided the size by the stride first", lambda n, k, s, p: n // s + 2 * p - k + 1,
                "subtract the kernel and add the padding before dividing by the stride."),
    ]
    return run_check("conv2d_output_size", fn, conv2d_output_size, cases, variants, rtol=0, atol=1e-9)


def check_slerp(fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(z0, z1, t) -> (steps, latent_dim)``: spherical interpolation (see ``plots.slerp``)."""
    from .plots import slerp

    g = torch.Generator().manual_seed(5)
    cases = [(torch.randn(d, generator=g), torch.randn(d, generator=g), torch.linspace(0, 1, steps))
             for d, steps in ((2, 5), (20, 7), (50, 3))]

    def unnormalised_angle(z0, z1, t):
        omega = torch.arccos(torch.clamp(torch.dot(z0, z1), -1.0, 1.0))
        t = t[:, None]
        return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)

    variants = [
        Variant("linear interpolation", lambda z0, z1, t: torch.lerp(z0, z1, t[:, None]),
                "that is lerp, a straight line: slerp weights z0 and z1 by sin((1-t) omega) / sin(omega) "
                "and sin(t omega) / sin(omega)."),
        Variant("angle of the unnormalised vectors", unnormalised_angle,
                "omega is the angle between the directions: arccos of the dot product of z0/|z0| and z1/|z1|."),
        Variant("t reversed", lambda z0, z1, t: slerp(z1, z0, t),
                "at t = 0 the path must start at z0 and at t = 1 end at z1."),
    ]
    return run_check("slerp", fn, slerp, cases, variants, check_grad=True)


def check_aggregate_posterior(fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(z, mu, logvar) -> (m,)``: ``log q(z)`` of the mixture of the encoder's Gaussians."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for m, n, d in ((5, 3, 2), (4, 50, 2), (3, 10, 6)):
        cases.append((torch.randn(m, d, generator=g) * 2, torch.randn(n, d, generator=g),
                      torch.randn(n, d, generator=g) * 0.5 - 1))
    ref = losses.aggregate_posterior_log_density
    n_of = lambda mu: math.log(mu.shape[0])  # noqa: E731

    def mean_of_logs(z, mu, lv):
        return torch.stack([ref(z, mu[i:i + 1], lv[i:i + 1]) for i in range(len(mu))]).mean(0)

    variants = [
        Variant("forgot - log N", lambda z, mu, lv: ref(z, mu, lv) + n_of(mu),
                "q(z) is the *average* of the N Gaussian densities: subtract log N after the logsumexp."),
        Variant("averaged the log-densities", mean_of_logs,
                "average the densities themselves (logsumexp - log N), not their logarithms."),
        Variant("standard deviation used as variance", lambda z, mu, lv: ref(z, mu, lv / 2),
                "logvar is log sigma^2: the variance is exp(logvar), not exp(logvar / 2)."),
    ]
    return run_check("aggregate posterior log q(z)", fn, ref, cases, variants, check_grad=True)


def _entropy_cases() -> list[tuple[Tensor]]:
    """Grayscale targets with exact 0s and 1s (like MNIST's background and strokes), and binary ones."""
    g = torch.Generator().manual_seed(5)
    gray = torch.rand(3, 1, 28, 28, generator=g)
    mixed = torch.rand(4, 1, 28, 28, generator=g)
    mixed[mixed < 0.5] = 0.0  # background pixels: exactly 0, where a naive p * log(p) gives NaN
    mixed[mixed > 0.9] = 1.0
    binary = torch.bernoulli(torch.full((2, 1, 28, 28), 0.2), generator=g)
    return [(gray,), (mixed,), (binary,)]


def check_bernoulli_entropy(fn: Callable[[Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(x) -> (batch,)``: the minimum achievable BCE for targets ``x`` in [0, 1],
    i.e. the entropy ``sum_i H(x_i)`` in nats, with ``0 log 0 = 0``."""

    def naive(x: Tensor) -> Tensor:
        return -(x * torch.log(x) + (1 - x) * torch.log(1 - x)).flatten(1).sum(1)

    ref = losses.bernoulli_entropy
    variants = [
        Variant("0 log 0 gives NaN", naive,
                "pixels that are exactly 0 or 1 give 0 * log(0) = NaN; use torch.xlogy(x, x), which is 0 there "
                "(a pixel that is surely 0 or surely 1 has no uncertainty)."),
        Variant("mean over pixels", lambda x: ref(x) / 784, "sum over the 784 pixels, don't average them."),
        Variant("bits instead of nats", lambda x: ref(x) / math.log(2),
                "use the natural logarithm (torch.log): the course's losses are in nats."),
        Variant("sign error", lambda x: -ref(x), "an entropy is >= 0: H(p) = -p log p - (1 - p) log(1 - p)."),
        Variant("only the p log p term", lambda x: -torch.xlogy(x, x).flatten(1).sum(1),
                "each pixel is a coin with two outcomes: add the (1 - p) log(1 - p) term too."),
        Variant("summed over the batch", lambda x: ref(x).sum(), "return one number per image, shape (batch,)."),
    ]
    return run_check("bernoulli_entropy", fn, ref, _entropy_cases(), variants)
