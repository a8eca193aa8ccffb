"""Notebook 5's capstone: the learner's ``train_step`` trains a real VAE to a target.

The learner writes ``train_step(model, optimizer, x) -> loss``: one optimizer step
of the seed's :class:`~vae_course.models.VAE` on a batch ``x`` of shape
``(B, 1, 28, 28)`` with pixels in [0, 1], returning the batch-mean loss in nats
per example (BCE summed over pixels + KL, averaged over the batch).
:func:`check_train_step` then

1. **probes** the step: from identical weights, batches and noise, it runs the
   learner's step and each known wrong step for :data:`PROBE_STEPS` steps and
   compares the losses they return (the engine's variant recognition), which
   names the mistake exactly when the learner's numbers match one;
2. **trains** a fresh VAE with the learner's step for a fixed small budget
   (:data:`EPOCHS` passes over the first :data:`TRAIN_IMAGES` MNIST training
   images, batch :data:`BATCH_SIZE`, Adam at :data:`LR`, fixed seeds, on the CPU);
3. **evaluates** the test loss with :func:`vae_course.evaluate.evaluate_elbo` on
   the first :data:`TEST_IMAGES` test images and compares it with :data:`TARGET_LOSS`.

The global random state is restored afterwards, so the notebook's later cells
draw the same numbers whether or not the check ran.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import DataNotFoundError, DataSplits, load_data, tensor_batches
from ..evaluate import evaluate_elbo
from ..losses import bernoulli_nll, kl_divergence, reparameterize
from ..models import VAE
from .engine import Variant, as_tensor, matching_variant, not_attempted, unusable

TITLE = "train_step"
TRAIN_IMAGES = 6_000   # the first images of MNIST's training split
TEST_IMAGES = 1_000    # the first images of MNIST's test split
BATCH_SIZE = 128
EPOCHS = 2             # 2 x ceil(6000 / 128) = 94 optimizer steps
LR = 1e-3              # Adam, the canonical example's rate
MODEL_SEED = 0         # initial weights
ORDER_SEED = 0         # batch order
NOISE_SEED = 1         # the eps of the reparameterization, through torch's global generator
PROBE_STEPS = 4        # steps compared with the known mistakes (a missing zero_grad shows from step 3)
# The reference step's test loss after the budget above, in nats per example, from a run of
# this module (tests/checks/test_train_step.py recomputes it). The margin absorbs a different
# but correct use of the noise (e.g. torch.distributions' rsample) and CPU rounding.
REFERENCE_TEST_LOSS = 180.05
TARGET_MARGIN = 5.0
TARGET_LOSS = REFERENCE_TEST_LOSS + TARGET_MARGIN
LOSS_RTOL = 1e-4       # same step, same noise: returned losses agree to float32 rounding

StepFn = Callable[[nn.Module, torch.optim.Optimizer, Tensor], Tensor]


class NotAttempted(Exception):
    """The learner's step is still a stub (returns ``None`` or raises ``NotImplementedError``)."""


class StepFailed(Exception):
    """The learner's step raised or returned something that is not a loss; the message says which."""


# ------------------------------------------------------------ the right answer
def train_step_solution(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor) -> Tensor:
    """One optimizer step on a batch ``x`` ``(B, 1, 28, 28)`` in [0, 1]; returns the
    batch-mean loss (a 0-d tensor, nats per example). The solution notebook 5 shows."""
    optimizer.zero_grad()                                      # forget the previous batch's gradients
    mu, logvar = model.encode(x)                               # q(z|x): two (B, 20) tensors
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)    # z = mu + sigma * eps
    logits = model.decode(z)                                   # (B, 1, 28, 28), one logit per pixel
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)  # (B,)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)                                # (B,)
    loss = (recon + kl).mean()                                 # nats per example
    loss.backward()
    optimizer.step()
    return loss.detach()


def make_step(objective: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor], zero_grad: bool = True,
              step: bool = True, sigma_of: Callable[[Tensor], Tensor] = lambda logvar: logvar.mul(0.5).exp()) -> StepFn:
    """A training step built from the package's pieces, ``objective(logits, x, mu, logvar)``
    giving the scalar to minimise; the other arguments switch on the known mistakes."""

    def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor) -> Tensor:
        if zero_grad:
            optimizer.zero_grad()
        mu, logvar = model.encode(x)
        z = mu + sigma_of(logvar) * torch.randn_like(mu)
        loss = objective(model.decode(z), x, mu, logvar)
        loss.backward()
        if step:
            optimizer.step()
        return loss.detach()

    return train_step


def _batch_mean_loss(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    return (bernoulli_nll(logits, x) + kl_divergence(mu, logvar)).mean()


def reference_step() -> StepFn:
    """The package's step: :func:`~vae_course.losses.bernoulli_nll` + :func:`~vae_course.losses.kl_divergence`,
    averaged over the batch, with the noise of :func:`~vae_course.losses.reparameterize`."""

    def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor) -> Tensor:
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        loss = _batch_mean_loss(model.decode(reparameterize(mu, logvar)), x, mu, logvar)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


def wrong_steps() -> list[Variant]:
    """The known mistakes, each a complete (wrong) training step and its hint."""
    recon, kl = bernoulli_nll, kl_divergence
    return [
        Variant("sum over the batch instead of the mean",
                make_step(lambda lg, x, m, lv: (recon(lg, x) + kl(m, lv)).sum()),
                f"your loss is about {BATCH_SIZE}x (the batch size) the loss per example: average over the "
                "batch, (recon + kl).mean(), so the number is in nats per example. Adam rescales the "
                "gradients, so it barely notices; with plain SGD every step would be that many times too big."),
        Variant("KL sign flipped",
                make_step(lambda lg, x, m, lv: (recon(lg, x) - kl(m, lv)).mean()),
                "the loss is reconstruction *plus* KL, with KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)) >= 0. "
                "With the sign flipped the optimizer pushes the KL up without limit and the loss runs off to "
                "minus infinity."),
        Variant("log-variance used as the variance",
                make_step(lambda lg, x, m, lv: (recon(lg, x) - 0.5 * (1 + lv - m.pow(2) - lv).sum(1)).mean()),
                "the encoder's second output is log sigma^2: the KL needs sigma^2 = logvar.exp(), not logvar. "
                "With logvar in its place the KL no longer stops sigma from shrinking to 0."),
        Variant("missing optimizer.zero_grad()",
                make_step(_batch_mean_loss, zero_grad=False),
                "call optimizer.zero_grad() before loss.backward(): PyTorch adds new gradients to the old "
                "ones, so without it every step also repeats all the previous steps."),
        Variant("log-variance used as sigma",
                make_step(_batch_mean_loss, sigma_of=lambda logvar: logvar),
                "z = mu + sigma * eps with sigma = torch.exp(0.5 * logvar): logvar is log sigma^2, not sigma."),
        Variant("no optimizer.step()",
                make_step(_batch_mean_loss, step=False),
                "call optimizer.step() after loss.backward(): without it the weights never change."),
    ]


# ------------------------------------------------------------------ running
@lru_cache(maxsize=1)
def capstone_data() -> DataSplits:
    """The first :data:`TRAIN_IMAGES` training and :data:`TEST_IMAGES` test images of MNIST,
    grayscale in [0, 1] (loaded once per session)."""
    return load_data("mnist", limit_train=TRAIN_IMAGES, limit_test=TEST_IMAGES)


def training_batches(data: DataSplits, epochs: int = EPOCHS) -> list[Tensor]:
    """Every batch of the budget, in the fixed order: ``(B, 1, 28, 28)`` tensors."""
    order = torch.Generator().manual_seed(ORDER_SEED)
    return [x for _ in range(epochs)
            for x, _ in tensor_batches(data.train_x, data.train_y, BATCH_SIZE, generator=order)]


def fresh_model() -> tuple[VAE, torch.optim.Optimizer]:
    """The seed's VAE with fixed initial weights, and its Adam optimizer."""
    torch.manual_seed(MODEL_SEED)
    model = VAE()
    return model, torch.optim.Adam(model.parameters(), lr=LR)


def call_step(fn: StepFn, model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, step: int) -> float:
    """One call of the learner's step; its loss as a float, or :class:`NotAttempted` / :class:`StepFailed`."""
    try:
        raw = fn(model, optimizer, x)
    except NotImplementedError:
        raise NotAttempted from None
    except Exception as err:  # the learner's code may fail in any way
        raise StepFailed(f"your function raised {type(err).__name__} at step {step}: {err}") from None
    if raw is None:
        raise NotAttempted
    loss = as_tensor(raw)
    if loss is None or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if loss is not None else type(raw).__name__
        raise StepFailed(f"expected the batch-mean loss, one number (a 0-d tensor), got {got}.")
    return float(loss.detach().reshape(()))


def run_steps(fn: StepFn, batches: list[Tensor]) -> tuple[nn.Module, Tensor]:
    """Train a fresh model with ``fn`` on ``batches``, noise seeded; returns the model and the
    ``(len(batches),)`` losses it returned (stops early at the first non-finite one)."""
    model, optimizer = fresh_model()
    torch.manual_seed(NOISE_SEED)
    losses = []
    for i, x in enumerate(batches, start=1):
        losses.append(call_step(fn, model, optimizer, x, i))
        if not math.isfinite(losses[-1]):
            break
    return model, torch.tensor(losses, dtype=torch.float64)


def probe_losses(fn: StepFn, batches: list[Tensor]) -> Tensor:
    """The losses ``fn`` returns on the first :data:`PROBE_STEPS` batches, from the fixed start."""
    return run_steps(fn, batches[:PROBE_STEPS])[1]


def diagnose(probe: Tensor, batches: list[Tensor]) -> str:
    """The hint for a failed step: the matching known mistake, else what the numbers suggest."""
    variants = wrong_steps()
    found = matching_variant([probe], [(batches,)], [Variant(v.name, _prober(v.fn), v.hint) for v in variants],
                             seed=None, rtol=LOSS_RTOL, atol=0.0)
    if found is not None:
        return f"Hint ({found.name}): {found.hint}"
    if not torch.isfinite(probe).all():
        return ("Hint: your loss became NaN or infinite. A log or square root of logvar? It can be negative: "
                "sigma^2 = logvar.exp() and sigma = torch.exp(0.5 * logvar).")
    if (probe < 0).any():
        return "Hint: a loss below 0 is impossible for BCE + KL (both are >= 0): is the KL subtracted?"
    return ("Compare your step with the loop above: zero_grad, encode, z = mu + sigma * eps, decode, "
            "loss = mean over the batch of (BCE summed over pixels + KL), backward, step.")


def _prober(step: StepFn) -> Callable[[list[Tensor]], Tensor]:
    return lambda batches: probe_losses(step, batches)


# ------------------------------------------------------------------- the check
def check_train_step(fn: StepFn | None) -> bool | None:
    """Check ``fn(model, optimizer, x) -> loss``: train a fresh seed VAE with it on real MNIST
    and compare the test loss (nats per example) with :data:`TARGET_LOSS`; when it misses,
    name the known mistake its numbers look like. Prints the verdict; returns
    ``True`` / ``False`` / ``None`` (not attempted) and never raises."""
    if (usable := unusable(TITLE, fn)) is not True:
        return usable
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers as they were
        try:
            return _train_and_judge(fn)
        except NotAttempted:
            not_attempted(TITLE, "your function returns None or raises NotImplementedError.")
            return None
        except StepFailed as err:
            print(f"❌ {TITLE}: {err}")
            return False


def _train_and_judge(fn: StepFn) -> bool:
    model, optimizer = fresh_model()
    call_step(fn, model, optimizer, torch.zeros(2, 1, 28, 28), 1)  # a stub stops here, before any data loads
    try:
        batches = training_batches(capstone_data())
    except DataNotFoundError as err:
        print(f"❌ {TITLE}: this check trains on MNIST, which could not be loaded: {err}")
        return False
    probe = probe_losses(fn, batches)
    expected = probe_losses(reference_step(), batches)
    print(f"Training a fresh VAE with your train_step: {len(batches)} steps ({EPOCHS} passes over "
          f"{TRAIN_IMAGES:,} MNIST images, batch {BATCH_SIZE}, Adam lr {LR:g}) ...")
    model, returned = run_steps(fn, batches)
    if not torch.isfinite(returned).all():
        print(f"❌ {TITLE}: the loss became {returned[-1].item()} at step {len(returned)}. {diagnose(probe, batches)}")
        return False
    test_loss = evaluate_elbo(model, capstone_data().test_x)["loss"]
    shown = f"{test_loss:.2f}" if abs(test_loss) < 1e5 else f"{test_loss:.3g}"  # a diverged run: 3.32e+23
    result = f"test loss {shown} nats per image on {TEST_IMAGES:,} test images"
    if not test_loss <= TARGET_LOSS:
        print(f"❌ {TITLE}: {result}, above the target {TARGET_LOSS:.2f}. {diagnose(probe, batches)}")
        return False
    # The model trained well; the number the step returns must also be the batch-mean loss.
    # At step 1 the weights and the batch are the reference's, so only the noise can differ.
    if abs(probe[0] - expected[0]) > 0.01 * abs(expected[0]):
        print(f"❌ {TITLE}: {result} (target {TARGET_LOSS:.2f}, reached), but at step 1 your function returned "
              f"{probe[0].item():.6g} where the batch-mean loss is {expected[0].item():.6g}. "
              f"{diagnose(probe, batches)}")
        return False
    print(f"✅ {TITLE}: {result}, within the target {TARGET_LOSS:.2f} (the reference step reaches "
          f"{REFERENCE_TEST_LOSS:.2f}).")
    return True
