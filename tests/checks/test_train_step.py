"""Notebook 5's capstone check (``checks.check_train_step``): it cannot be fooled and names the mistake.

Every wrong step below is written as a learner would write it. Each must fail with a hint
that names its mistake and quotes the batch size the step was given; every correct
alternative must pass. The check measures the steps on its own probe (no dataset needed)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_course import checks
from vae_course.checks import train_step as T
from vae_course.losses import vae_loss

B = f"B = {T.BATCH_SIZE}"


def verdict(capsys, fn):
    result = checks.check_train_step(fn)
    return result, capsys.readouterr().out


def kl_terms(mu, logvar):
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())  # (B, 20)


def bce(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (B,)


# ----------------------------------------------------------- correct alternatives
def with_distributions(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    logits = model.decode(q.rsample())
    recon = -Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    loss = (recon + kl).mean()
    loss.backward()
    optimizer.step()
    return loss


def returns_item(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + logvar.mul(0.5).exp() * torch.randn(mu.shape)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def bce_on_probabilities(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.sqrt(torch.exp(logvar)) * torch.randn_like(mu)
    probs = torch.sigmoid(model.decode(z))
    recon = F.binary_cross_entropy(probs, x, reduction="sum") / len(x)
    kl = kl_terms(mu, logvar).sum() / len(x)
    loss = recon + kl
    loss.backward()
    optimizer.step()
    return loss.detach()


def forward_and_package_loss(model, optimizer, x):
    logits, mu, logvar = model(x)  # the model samples z itself
    loss = vae_loss(logits, x, mu, logvar).loss.mean()
    model.zero_grad(set_to_none=False)  # zeroing just before backward is as good as at the start
    loss.backward()
    optimizer.step()
    return loss.item()


def zero_grad_at_the_end(model, optimizer, x):
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(logvar)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()  # the next call starts from clean gradients all the same
    return loss


def own_noise_generator(model, optimizer, x):
    """A correct step whose noise comes from its own generator: not the check's seeded draw."""
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=own_noise_generator.generator)
    z = mu + torch.exp(0.5 * logvar) * eps
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


own_noise_generator.generator = torch.Generator().manual_seed(12345)


@pytest.mark.parametrize("step", [
    T.train_step_solution, with_distributions, returns_item, bce_on_probabilities,
    forward_and_package_loss, zero_grad_at_the_end, own_noise_generator,
], ids=lambda f: f.__name__)
def test_correct_steps_pass(capsys, step):
    result, out = verdict(capsys, step)
    assert result is True, out
    assert out.startswith("✅ train_step:") and B in out and "❌" not in out, out


# -------------------------------------------------------------- wrong steps
def no_kl(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = bce(model.decode(z), x).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def returns_recon_only(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = bce(model.decode(z), x).mean()
    loss = recon + kl_terms(mu, logvar).sum(1).mean()
    loss.backward()
    optimizer.step()
    return recon.detach()  # trains right, reports the wrong number


def zero_grad_between(model, optimizer, x):
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.detach()


def no_zero_grad(model, optimizer, x):
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def no_step(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    return loss.detach()


def recon_mean_over_pixels(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = F.binary_cross_entropy_with_logits(model.decode(z), x)  # the default: a mean over B x 784 pixels
    loss = recon + kl_terms(mu, logvar).sum(1).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def sum_over_batch(model, optimizer, x):  # the canonical PyTorch example's loss, not divided by B
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum") + kl_terms(mu, logvar).sum()
    loss.backward()
    optimizer.step()
    return loss.detach()


def recon_summed_kl_averaged(model, optimizer, x):  # beta = 1/B
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum") + kl_terms(mu, logvar).sum(1).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def kl_summed_recon_averaged(model, optimizer, x):  # beta = B
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = bce(model.decode(z), x).mean() + kl_terms(mu, logvar).sum()
    loss.backward()
    optimizer.step()
    return loss.detach()


def kl_mean_over_latent(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = bce(model.decode(z), x).mean() + kl_terms(mu, logvar).mean()  # mean over B x 20
    loss.backward()
    optimizer.step()
    return loss.detach()


def every_term_averaged(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = F.binary_cross_entropy_with_logits(model.decode(z), x) + kl_terms(mu, logvar).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def variance_as_sigma(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def logvar_as_sigma(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + logvar * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def mean_not_sample(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    loss = (bce(model.decode(mu), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def uniform_noise(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.rand_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def shared_noise(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(1, mu.shape[1])  # one eps for every image
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def detached_z(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = Normal(mu, torch.exp(0.5 * logvar)).sample()  # .sample(): no gradient
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def torch_normal_sample(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = torch.normal(mu, torch.exp(0.5 * logvar))  # requires grad, but its gradient is zero
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def detached_encoder(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    mu, logvar = mu.detach(), logvar.detach()
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def kl_sign_flipped(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    kl = 0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    loss = (bce(model.decode(z), x) + kl).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def kl_without_half(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    kl = -(1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    loss = (bce(model.decode(z), x) + kl).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def logvar_as_variance_in_kl(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar).sum(1)
    loss = (bce(model.decode(z), x) + kl).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def squared_error(model, optimizer, x):  # the seed's reconstruction loss
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = (torch.sigmoid(model.decode(z)) - x).pow(2).flatten(1).sum(1)
    loss = (recon + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def sigmoid_twice(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(torch.sigmoid(model.decode(z)), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def bce_arguments_swapped(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = F.binary_cross_entropy_with_logits(x, model.decode(z), reduction="none").flatten(1).sum(1)
    loss = (recon + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def step_before_backward(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    optimizer.step()
    loss.backward()
    return loss.detach()


def no_backward(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    optimizer.step()
    return loss.detach()


def new_optimizer(model, optimizer, x):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # Adam's running averages restart every call
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def step_twice(model, optimizer, x):
    optimizer.zero_grad()
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.detach()


# (wrong step, the name its hint must give)
NAMED = [
    (no_kl, "no KL term"),
    (returns_recon_only, "returns only the reconstruction term"),
    (zero_grad_between, "optimizer.zero_grad() between backward() and step()"),
    (no_zero_grad, "missing optimizer.zero_grad()"),
    (no_step, "no optimizer.step()"),
    (recon_mean_over_pixels, "reconstruction averaged over the 784 pixels (β = 784)"),
    (sum_over_batch, "sum over the batch instead of the mean"),
    (recon_summed_kl_averaged, f"reconstruction summed over the batch (β = 1/B = 1/{T.BATCH_SIZE})"),
    (kl_summed_recon_averaged, f"KL summed over the batch (β = B = {T.BATCH_SIZE})"),
    (kl_mean_over_latent, "KL averaged over the 20 latent dimensions (β = 1/20)"),
    (every_term_averaged,
     "reconstruction averaged over the 784 pixels + KL averaged over the 20 latent dimensions (β = 784/20 = 39.2)"),
    (variance_as_sigma, "the variance used where the standard deviation belongs"),
    (logvar_as_sigma, "the log-variance used as sigma"),
    (mean_not_sample, "the mean instead of a sample"),
    (uniform_noise, "uniform noise instead of Gaussian"),
    (shared_noise, "one eps for the whole batch"),
    (detached_z, "a detached z"),
    (torch_normal_sample, "a detached z"),
    (detached_encoder, "mu and logvar detached"),
    (kl_sign_flipped, "KL sign flipped"),
    (kl_without_half, "KL without its 1/2"),
    (logvar_as_variance_in_kl, "log-variance used as the variance in the KL"),
    (squared_error, "squared error instead of the Bernoulli NLL"),
    (sigmoid_twice, "sigmoid applied twice"),
    (bce_arguments_swapped, "input and target swapped in the BCE"),
    (step_before_backward, "optimizer.step() before loss.backward()"),
    (no_backward, "no loss.backward()"),
    (new_optimizer, "a new optimizer inside train_step"),
    (step_twice, "optimizer.step() called more than once"),
]


@pytest.mark.parametrize("step, name", NAMED, ids=[f.__name__ for f, _ in NAMED])
def test_each_wrong_step_fails_and_names_its_mistake(capsys, step, name):
    result, out = verdict(capsys, step)
    assert result is False, out
    assert out.startswith("❌ train_step:") and out.count("\n") == 1, out  # one line
    assert f"Hint ({name}):" in out, out
    assert B in out, out  # the batch the step was given


def test_the_mistakes_are_many_and_distinct():
    """At least 12 different mistakes, each recognised as itself."""
    assert len({name for _, name in NAMED}) >= 12


def test_zero_grad_between_backward_and_step_is_not_called_a_missing_step(capsys):
    out = verdict(capsys, zero_grad_between)[1]
    assert "call optimizer.step()" not in out and "did not change" not in out, out


def test_a_step_that_trains_right_but_returns_the_reconstruction_is_caught_where_the_kl_is_large(capsys):
    out = verdict(capsys, returns_recon_only)[1]
    # the verdict states the KL of the probe: far from the ~0.1 nats of a fresh model
    kl = float(out.split("whose KL is ")[1].split(" nats")[0])
    assert kl > 10, out


def test_the_probe_has_a_large_kl():
    """The returned loss is compared where the KL matters: tens of nats, not a fresh model's ~0.1."""
    model, _ = T.probe_model()
    with torch.no_grad():
        mu, logvar = model.encode(T.probe_batches()[0])
        assert float(vae_loss(model.decode(mu), T.probe_batches()[0], mu, logvar).kl.mean()) > 10


def test_no_known_mistake_reproduces_the_reference_step():
    """The catalogue is sound: the reference passes its own comparison, no wrong step does."""
    noise = [T.seeded_noise(t, torch.zeros(T.BATCH_SIZE, T.LATENT_DIM)) for t in range(1, T.PROBE_STEPS + 1)]
    ref = list(T.trace(T.reference_step(noise)))
    assert T.reproduces(ref, T.reference_step(noise))
    for variant in T.wrong_steps(noise):
        assert not T.reproduces(ref, variant.fn), variant.name


def test_wrong_steps_are_told_apart():
    """No two known wrong steps give the same numbers on the probe, so a match names one mistake."""
    noise = [T.seeded_noise(t, torch.zeros(T.BATCH_SIZE, T.LATENT_DIM)) for t in range(1, T.PROBE_STEPS + 1)]
    variants = T.wrong_steps(noise)
    traces = {v.name: list(T.trace(v.fn)) for v in variants}
    for v in variants:
        matches = [w.name for w in variants if all(map(T.same_call, traces[v.name], traces[w.name]))]
        assert matches == [v.name]


# ------------------------------------------------------- the other verdicts
def test_per_example_losses_quote_the_batch_size(capsys):
    def per_example(model, optimizer, x):
        loss = T.train_step_solution(model, optimizer, x)
        return loss.expand(len(x))

    result, out = verdict(capsys, per_example)
    assert result is False and f"shape ({T.BATCH_SIZE},)" in out and B in out and ".mean()" in out, out


def test_a_tuple_is_refused_kindly(capsys):
    result, out = verdict(capsys, lambda m, o, x: (T.train_step_solution(m, o, x), 0.0))
    assert result is False and "tuple of 2 values" in out and "only the loss" in out, out


def test_probabilities_passed_as_logits_raise_with_a_hint(capsys):
    def bce_on_logits(model, optimizer, x):
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        logits = model.decode(mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
        loss = F.binary_cross_entropy(logits, x)
        loss.backward()
        optimizer.step()
        return loss

    result, out = verdict(capsys, bce_on_logits)
    assert result is False and "raised RuntimeError at call 1" in out and B in out, out
    assert "torch.sigmoid(logits)" in out, out


def test_a_nan_loss_is_reported(capsys):
    def sqrt_of_logvar(model, optimizer, x):
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        z = mu + torch.sqrt(logvar) * torch.randn_like(mu)  # NaN where logvar < 0
        loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
        loss.backward()
        optimizer.step()
        return loss

    result, out = verdict(capsys, sqrt_of_logvar)
    assert result is False and "nan" in out and "logvar" in out and B in out, out


def test_noise_that_is_not_standard_normal_is_measured(capsys):
    def doubled_noise(model, optimizer, x):
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * 2 * torch.randn_like(mu)
        loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
        loss.backward()
        optimizer.step()
        return loss

    result, out = verdict(capsys, doubled_noise)
    assert result is False and "Hint (z is not mu + sigma * eps with eps ~ N(0, I))" in out and B in out, out
    assert "standard deviation 2" in out, out


def test_an_unknown_mistake_gets_the_measured_hint(capsys):
    def mu_detached(model, optimizer, x):
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        mu = mu.detach()
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        loss = (bce(model.decode(z), x) + kl_terms(mu, logvar).sum(1)).mean()
        loss.backward()
        optimizer.step()
        return loss

    result, out = verdict(capsys, mu_detached)
    assert result is False and "fc21 (the mean head) got no gradient at all" in out and B in out, out


@pytest.mark.parametrize("stub", [lambda m, o, x: None, None], ids=["returns-None", "None"])
def test_a_stub_is_not_attempted_yet(capsys, stub):
    result, out = verdict(capsys, stub)
    assert result is None and "not attempted yet" in out, out


def test_the_notebooks_stub_is_not_attempted_yet(capsys):
    def train_step(model, optimizer, x):
        raise NotImplementedError

    result, out = verdict(capsys, train_step)
    assert result is None
    assert out == "⏳ train_step: not attempted yet — your function returns None or raises NotImplementedError.\n"


def test_broken_steps_fail_kindly(capsys):
    def broken(model, optimizer, x):
        raise RuntimeError("boom")

    result, out = verdict(capsys, broken)
    assert result is False and f"raised RuntimeError at call 1 (a batch of {B} images): boom" in out, out
    assert checks.check_train_step(42) is False


def test_the_check_leaves_the_global_random_state_alone():
    torch.manual_seed(7)
    want = torch.rand(3)
    torch.manual_seed(7)
    checks.check_train_step(T.train_step_solution)
    checks.check_train_step(sum_over_batch)
    assert torch.equal(torch.rand(3), want)


def test_the_check_leaves_the_probe_batches_intact():
    before = [x.clone() for x in T.probe_batches()]

    def scribbles_on_x(model, optimizer, x):
        x.mul_(0.0)
        return T.train_step_solution(model, optimizer, x)

    checks.check_train_step(scribbles_on_x)
    assert all(torch.equal(a, b) for a, b in zip(before, T.probe_batches()))


def test_beta_formulas():
    assert T._beta("mean", "mean", "sum", "mean", 32) == (784, "784")
    assert T._beta("sum", "sum", "sum", "mean", 32) == (1 / 32, "1/B = 1/32")
    value, text = T._beta("mean", "mean", "mean", "mean", 32)
    assert math.isclose(value, 39.2) and text == "784/20 = 39.2"
