"""Notebook 5's capstone: the learner's ``train_step``, measured against the reference step.

The learner writes ``train_step(model, optimizer, x) -> loss``: one optimizer step of the
seed's :class:`~vae_course.models.VAE` on a batch ``x`` of shape ``(B, 1, 28, 28)`` with
pixels in [0, 1], returning the batch-mean loss in nats per example (the Bernoulli NLL
summed over the 784 pixels plus the KL summed over the 20 latent dimensions, averaged over
the batch), as a 0-d tensor or a Python float.

:func:`check_train_step` never reads the learner's code; it *measures* what the step does.

1. **The probe** (:func:`probe_model`, :func:`probe_batches`): the seed's VAE with its
   encoder heads shifted so that q(z|x) sits far from the prior (a KL of tens of nats per
   example, where a fresh model has about 0.1, so a step that drops or rescales the KL cannot
   hide), :data:`PROBE_STEPS` fixed batches of :data:`BATCH_SIZE` images, plain SGD (its update
   is ``-lr`` times the gradient, so every factor shows; Adam would divide most of them out)
   and seeded noise.
2. **The learner's step**, called once per batch on that probe with hooks that record what it
   did (:class:`Call`): the number it returns, the gradients ``optimizer.step()`` was handed,
   the order of ``backward()`` and ``step()``, and the ``z`` the decoder received.
3. **The reference step** on the same probe with the same noise, written with the package's
   :func:`~vae_course.losses.vae_loss`. The learner's step passes when, at every call, its
   returned loss and the gradients it applied agree with the reference's, layer by layer.
4. **The diagnosis** when they do not, in this order: the calls' order (no ``step()``,
   ``zero_grad()`` between ``backward()`` and ``step()``, ...), the sample ``z`` (the mean
   alone, the variance where sigma belongs, a detached ``z``, ...), then the known wrong
   steps of :func:`wrong_steps`, each run on the same probe with the same noise: the first
   whose numbers the learner's reproduce names the mistake. Otherwise the hint says what
   the measurements show (which number or which layers differ, and by how much).

Every verdict quotes the batch size ``B`` the learner's step was given. The global random
state is restored afterwards, so the notebook's later cells draw the same numbers whether or
not the check ran.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import bernoulli_nll, kl_divergence, vae_loss
from ..models import NUM_PIXELS, VAE
from .engine import Variant, as_tensor, not_attempted, unusable

TITLE = "train_step"
BATCH_SIZE = 32          # images per probe batch (quoted in every verdict)
PROBE_STEPS = 2          # consecutive calls: the second shows what the first leaves behind (un-zeroed gradients)
LR = 1e-3                # plain SGD on the probe: the update is -LR x the gradient
LATENT_DIM = 20          # the seed's latent size
MODEL_SEED = 0           # the probe's initial weights
DATA_SEED = 0            # the probe's images
NOISE_SEED = 1           # call t draws its eps after torch.manual_seed(NOISE_SEED + t)
MU_SPREAD = 4.0          # fc21's biases are shifted by -4 ... 4: the means sit far from the prior's 0
LOGVAR_RANGE = (-3.0, 1.0)  # fc22's biases: sigma from 0.22 to 1.65, so sigma, sigma^2 and log sigma^2 all differ
LOSS_RTOL = 1e-4         # same step, same noise: returned losses agree to float32 rounding
GRAD_RTOL = 1e-3         # ... and so do the gradients, layer by layer (a correct but differently written step: ~1e-6)
Z_TOL = 1e-5             # the learner's z against a candidate sample, relative and absolute
NOISE_MOMENT_TOL = 0.2   # a foreign N(0, 1) draw of 32 x 20 numbers: mean 0 +- 0.2, std 1 +- 0.2 (5+ standard errors)
LAYERS = ("fc1", "fc21", "fc22", "fc3", "fc4")
ENCODER = ("fc1", "fc21", "fc22")
LAYER_ROLES = {"fc1": "fc1 (the encoder's hidden layer)", "fc21": "fc21 (the mean head)",
               "fc22": "fc22 (the log-variance head)", "fc3": "fc3 (the decoder's hidden layer)",
               "fc4": "fc4 (the decoder's output layer)"}
RECIPE = ("zero_grad, encode, z = mu + sigma * eps with sigma = torch.exp(0.5 * logvar), decode, "
          "loss = mean over the batch of (BCE summed over the 784 pixels + KL summed over the 20 latent "
          "dimensions), backward, step")

StepFn = Callable[[nn.Module, torch.optim.Optimizer, Tensor], object]
Objective = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (logits, x, mu, logvar) -> scalar


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


def batch_mean_loss(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The capstone's loss, a 0-d tensor in nats per example: the package's :func:`vae_loss`
    (Bernoulli NLL + KL, each summed over its dimensions) averaged over the batch."""
    return vae_loss(logits, x, mu, logvar).loss.mean()


def step_with(objective: Objective, noise: Sequence[Tensor], zero_grad: bool = True,
              returned: Objective | None = None, z_of: Callable[[Tensor], Tensor] = lambda z: z) -> StepFn:
    """A training step, right or wrong, for the probe: ``objective(logits, x, mu, logvar)`` is
    the scalar it backpropagates, ``returned`` the number it returns (default: the same),
    ``zero_grad=False`` leaves the previous call's gradients in place, ``z_of`` changes the
    sample before it is decoded. Call ``t`` uses ``noise[t - 1]`` as its eps ``(B, 20)``, so it
    samples exactly the z the learner's step did."""
    draws = iter(noise)

    def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor) -> Tensor:
        if zero_grad:
            optimizer.zero_grad()
        mu, logvar = model.encode(x)
        logits = model.decode(z_of(mu + torch.exp(0.5 * logvar) * next(draws)))
        loss = objective(logits, x, mu, logvar)
        loss.backward()
        optimizer.step()
        return (loss if returned is None else returned(logits, x, mu, logvar)).detach()

    return train_step


def reference_step(noise: Sequence[Tensor]) -> StepFn:
    """The package's step on the given noise: :func:`batch_mean_loss`, zero_grad, backward, step."""
    return step_with(batch_mean_loss, noise)


# ------------------------------------------------------------------- the probe
@lru_cache(maxsize=1)
def _probe_weights() -> dict[str, Tensor]:
    torch.manual_seed(MODEL_SEED)
    model = VAE(latent_dim=LATENT_DIM)
    with torch.no_grad():  # move q(z|x) far from the prior, so the KL is large
        model.fc21.bias += torch.linspace(-MU_SPREAD, MU_SPREAD, LATENT_DIM)
        model.fc22.bias.copy_(torch.linspace(*LOGVAR_RANGE, LATENT_DIM))
    return {k: v.clone() for k, v in model.state_dict().items()}


def probe_model() -> tuple[VAE, torch.optim.Optimizer]:
    """The probe's model (the seed's VAE, encoder heads shifted: a KL of tens of nats per
    example) and a plain SGD optimizer at :data:`LR`, fresh for every run."""
    model = VAE(latent_dim=LATENT_DIM)
    model.load_state_dict(_probe_weights())
    return model, torch.optim.SGD(model.parameters(), lr=LR)


@lru_cache(maxsize=1)
def probe_batches() -> tuple[Tensor, ...]:
    """:data:`PROBE_STEPS` fixed batches ``(BATCH_SIZE, 1, 28, 28)`` of grayscale pixels in [0, 1]
    (``u ** 3`` with ``u`` uniform: mostly dark, like digits). The step's arithmetic is what
    is measured, so no dataset is needed."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    return tuple(torch.rand(BATCH_SIZE, 1, 28, 28, generator=generator).pow(3) for _ in range(PROBE_STEPS))


# ------------------------------------------------------------- measuring a step
@dataclass
class Call:
    """What one call of a training step did, as the probe's hooks saw it."""

    loss: float = math.nan                   # the number it returned
    events: list[str] = field(default_factory=list)   # "backward" and "step", in the order they happened
    applied: dict[str, Tensor] | None = None  # per layer, the gradient the first step() was handed (flat)
    mu: Tensor | None = None                 # the first encode's outputs, (B, 20) each
    logvar: Tensor | None = None
    z: Tensor | None = None                  # the first decode's input, (B, 20)
    z_tracks_grad: bool = True               # whether that z was connected to the graph
    moved: bool = False                      # whether any weight changed

    @property
    def empty_at_step(self) -> bool:
        """``step()`` was handed no gradient at all (every ``.grad`` ``None`` or zero)."""
        return self.applied is not None and all(not g.any() for g in self.applied.values())


def layer_grads(model: nn.Module) -> dict[str, Tensor]:
    """Each layer's gradient, weights and bias flattened into one vector (zeros where ``.grad`` is None)."""
    parts: dict[str, list[Tensor]] = {}
    for name, p in model.named_parameters():
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        parts.setdefault(name.rsplit(".", 1)[0], []).append(grad.detach().flatten().clone())
    return {layer: torch.cat(gs) for layer, gs in parts.items()}


@contextmanager
def recording(model: VAE, optimizer: torch.optim.Optimizer, call: Call) -> Iterator[None]:
    """Hooks that fill ``call`` while a step runs: encoder outputs, decoder input,
    ``backward()`` (a gradient reaching a weight) and ``step()`` (with the gradients it gets)."""

    def keep_encoder(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if getattr(call, name) is None:
                setattr(call, name, output.detach().clone())
        return hook

    def keep_z(module: nn.Module, inputs: tuple) -> None:
        if call.z is None:
            call.z, call.z_tracks_grad = inputs[0].detach().clone(), inputs[0].requires_grad

    def on_backward(param: Tensor) -> None:
        if not call.events or call.events[-1] != "backward":
            call.events.append("backward")

    def on_step(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        call.events.append("step")
        if call.applied is None:
            call.applied = layer_grads(model)

    handles = [model.fc21.register_forward_hook(keep_encoder("mu")),
               model.fc22.register_forward_hook(keep_encoder("logvar")),
               model.fc3.register_forward_pre_hook(keep_z),
               optimizer.register_step_pre_hook(on_step),
               *(p.register_post_accumulate_grad_hook(on_backward) for p in model.parameters())]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# Hints for errors a learner's step commonly raises, keyed by a piece of PyTorch's message.
ERROR_HINTS = {
    "between 0 and 1": "F.binary_cross_entropy expects probabilities: pass torch.sigmoid(logits), or "
                       "better, use F.binary_cross_entropy_with_logits(logits, x) on the logits.",
    "does not require grad": "the loss is cut off from the weights: no torch.no_grad(), .detach() or .item() "
                             "before loss.backward().",
    "backward through the graph a second time": "call loss.backward() once per step.",
    "same device": "the check runs your step on the CPU: work on x and the model where they are, without "
                   ".to(device) inside train_step.",
}


def call_step(fn: StepFn, model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, step: int) -> float:
    """One call of a step on the batch ``x``; its loss as a float, or :class:`NotAttempted` / :class:`StepFailed`."""
    where = f"at call {step} (a batch of B = {len(x)} images)"
    try:
        raw = fn(model, optimizer, x)
    except NotImplementedError:
        raise NotAttempted from None
    except Exception as err:  # the learner's code may fail in any way
        hint = next((f" Hint: {h}" for key, h in ERROR_HINTS.items() if key in str(err)), "")
        raise StepFailed(f"your function raised {type(err).__name__} {where}: {err}.{hint}") from None
    if raw is None:
        raise NotAttempted
    if isinstance(raw, (tuple, list)):
        raise StepFailed(f"your function returned a {type(raw).__name__} of {len(raw)} values {where}: "
                         "return only the loss, one number.")
    loss = as_tensor(raw)
    if loss is None:
        raise StepFailed(f"your function returned a {type(raw).__name__} {where}: return the loss, one number "
                         "(a 0-d tensor, loss.detach(), or a float, loss.item()).")
    if loss.numel() != 1:
        per_example = " That is one loss per image: average them over the batch with .mean()." \
            if tuple(loss.shape) == (len(x),) else ""
        raise StepFailed(f"your function returned shape {tuple(loss.shape)} {where}, expected the batch-mean "
                         f"loss, one number (a 0-d tensor).{per_example}")
    return float(loss.detach().reshape(()))


def trace(fn: StepFn) -> Iterator[Call]:
    """Run ``fn`` on the probe, one call per batch of :func:`probe_batches` from the same fresh
    model, the noise seeded before each call; yield what each call did."""
    model, optimizer = probe_model()
    for t, x in enumerate(probe_batches(), start=1):
        call = Call()
        before = [p.detach().clone() for p in model.parameters()]
        torch.manual_seed(NOISE_SEED + t)
        with recording(model, optimizer, call):
            call.loss = call_step(fn, model, optimizer, x.clone(), t)  # a clone: the probe's batch stays intact
        call.moved = any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
        yield call


def seeded_noise(call_index: int, like: Tensor, uniform: bool = False) -> Tensor:
    """The eps a step drawing from torch's global generator gets at call ``call_index`` (1, 2, ...)
    of :func:`trace`: ``torch.randn_like`` (or ``torch.rand_like``) after the seed ``trace`` sets."""
    torch.manual_seed(NOISE_SEED + call_index)
    return torch.rand_like(like) if uniform else torch.randn_like(like)


# ------------------------------------------------------------------ comparing
def close_loss(a: float, b: float) -> bool:
    """Two returned losses agree to :data:`LOSS_RTOL`."""
    return math.isclose(a, b, rel_tol=LOSS_RTOL, abs_tol=1e-6)


def differing_layers(mine: dict[str, Tensor] | None, ref: dict[str, Tensor] | None) -> list[str]:
    """The layers whose applied gradients differ by more than :data:`GRAD_RTOL` (relative to the
    reference's layer; all layers when only one of the two steps called ``step()``)."""
    if mine is None or ref is None:
        return [] if mine is ref else list(LAYERS)
    total = math.sqrt(sum(float(g.double().pow(2).sum()) for g in ref.values()))
    return [layer for layer in LAYERS
            if float((mine[layer].double() - ref[layer].double()).norm())
            > GRAD_RTOL * float(ref[layer].double().norm()) + 1e-7 * total]


def same_call(mine: Call, ref: Call) -> bool:
    """Same returned loss and the same gradients handed to ``step()``, in every layer."""
    return close_loss(mine.loss, ref.loss) and not differing_layers(mine.applied, ref.applied)


def reproduces(calls: Sequence[Call], fn: StepFn) -> bool:
    """Whether ``fn``, run on the probe, does at every call what the learner's step did."""
    return all(same_call(mine, theirs) for mine, theirs in zip(calls, trace(fn)))


# ---------------------------------------------------------- the known mistakes
@dataclass(frozen=True)
class Observed:
    """A mistake recognised from what the hooks recorded (no wrong step to rerun): its name and hint."""

    name: str
    hint: str


def _order_mistakes() -> dict[str, Observed]:
    """Mistakes in the order of the calls, recognised from the hooks' record of ``backward()`` and ``step()``."""
    return {v.name: v for v in [
        Observed("no optimizer.step()",
                 "the weights did not change: call optimizer.step() after loss.backward()."),
        Observed("optimizer.zero_grad() between backward() and step()",
                 "optimizer.step() was called, but with empty gradients: a zero_grad() placed after "
                 "loss.backward() erases the gradients just computed, so the step changes nothing. Call "
                 "optimizer.zero_grad() first, before the forward pass."),
        Observed("no loss.backward()",
                 "no gradient ever reached the weights: call loss.backward() before optimizer.step()."),
        Observed("optimizer.step() before loss.backward()",
                 "optimizer.step() ran before loss.backward(), so it applied no gradient (or the previous "
                 "batch's): the order is zero_grad, forward, backward, step."),
        Observed("optimizer.step() called more than once",
                 "one call of train_step is one optimizer step: call optimizer.step() once."),
        Observed("a new optimizer inside train_step",
                 "the weights changed, but not through the optimizer passed in: use that one (it keeps Adam's "
                 "running averages from step to step); creating an optimizer inside train_step starts them over "
                 "at every call."),
    ]}


ORDER_MISTAKES = _order_mistakes()


def order_mistake(calls: Sequence[Call]) -> Observed | None:
    """The mistake in the order of backward / step / zero_grad that the calls show, if any."""
    named = ORDER_MISTAKES
    for c in calls:
        steps = c.events.count("step")
        if "backward" not in c.events:
            return named["a new optimizer inside train_step"] if c.moved and not steps else named["no loss.backward()"]
        if steps == 0:
            return named["a new optimizer inside train_step"] if c.moved else named["no optimizer.step()"]
        if steps > 1:
            return named["optimizer.step() called more than once"]
        if c.events.index("step") < c.events.index("backward"):
            return named["optimizer.step() before loss.backward()"]
        if c.empty_at_step:
            return named["optimizer.zero_grad() between backward() and step()"]
    return None


# Candidate samples z = f(mu, logvar, eps_normal, eps_uniform), each (B, 20): the right one, then
# the classic mistakes, compared with the z the learner's decoder received.
def _right_sample(mu: Tensor, logvar: Tensor, normal: Tensor, uniform: Tensor) -> Tensor:
    return mu + torch.exp(0.5 * logvar) * normal


SAMPLING_MISTAKES = [
    Variant("the mean instead of a sample", lambda mu, lv, n, u: mu,
            "the decoder received z = mu exactly: no noise, so the step trains an autoencoder with a KL "
            "penalty, not a VAE. Sample z = mu + sigma * eps with eps = torch.randn_like(mu)."),
    Variant("the variance used where the standard deviation belongs", lambda mu, lv, n, u: mu + lv.exp() * n,
            "z = mu + sigma * eps needs the standard deviation sigma = torch.exp(0.5 * logvar); "
            "torch.exp(logvar) is the variance sigma^2."),
    Variant("the log-variance used as sigma", lambda mu, lv, n, u: mu + lv * n,
            "z = mu + sigma * eps with sigma = torch.exp(0.5 * logvar): logvar is log sigma^2, not sigma "
            "(it can be negative)."),
    Variant("uniform noise instead of Gaussian", lambda mu, lv, n, u: mu + torch.exp(0.5 * lv) * u,
            "eps must be standard normal: torch.randn_like(mu), not torch.rand_like (uniform on [0, 1))."),
    Variant("sigma left out of the sample", lambda mu, lv, n, u: mu + n,
            "z = mu + sigma * eps: the noise must be scaled by sigma = torch.exp(0.5 * logvar)."),
]
DETACHED_Z_HINT = ("the z the decoder received passes no gradient back to the encoder (a .detach(), "
                   "torch.no_grad(), .sample() where .rsample() belongs, or torch.normal(mu, std), whose gradient "
                   "is zero), so the reconstruction term never reaches the encoder: it learns from the KL alone. "
                   "Build z = mu + sigma * eps from the encoder's outputs, with eps = torch.randn_like(mu).")
DETACHED_ENCODER_HINT = ("the encoder got no gradient at all: mu and logvar (and so z and the KL) are cut off from "
                         "it by a .detach(), .data or torch.no_grad(). Use model.encode(x)'s outputs as they are.")
DETACHED_Z = Observed("a detached z", DETACHED_Z_HINT)
DETACHED_ENCODER = Observed("mu and logvar detached", DETACHED_ENCODER_HINT)
SHARED_NOISE = Observed("one eps for the whole batch",
                        "every image got the same noise eps: draw one per image and latent dimension, "
                        "eps = torch.randn_like(mu), shape (B, 20).")


def noise_of(calls: Sequence[Call]) -> tuple[list[Tensor], Variant | Observed | None]:
    """The eps each call used, and the sampling mistake, if any, its ``z`` shows.

    The eps is the seeded draw when ``z`` matches ``mu + sigma * eps`` with it; when the step
    drew its noise another way, it is the step's own eps, ``(z - mu) / sigma``, provided that
    looks standard normal, so a correct step with any noise source is compared exactly."""
    noise = []
    for t, c in enumerate(calls, start=1):
        if c.z is None or c.mu is None or c.logvar is None or c.z.shape != c.mu.shape:
            # the decoder or the encoder was bypassed: nothing to compare z with; assume the seeded draw
            shape = torch.zeros(BATCH_SIZE, LATENT_DIM)
            return [seeded_noise(i, shape) for i in range(1, len(calls) + 1)], None
        normal, uniform = seeded_noise(t, c.mu), seeded_noise(t, c.mu, uniform=True)
        if torch.allclose(c.z, _right_sample(c.mu, c.logvar, normal, uniform), rtol=Z_TOL, atol=Z_TOL):
            eps = normal
        else:
            wrong = next((v for v in SAMPLING_MISTAKES
                          if torch.allclose(c.z, v.fn(c.mu, c.logvar, normal, uniform), rtol=Z_TOL, atol=Z_TOL)), None)
            if wrong is not None:
                return [], wrong
            eps = (c.z - c.mu) / torch.exp(0.5 * c.logvar)  # the step's own noise, if it sampled right
            if (odd := _not_standard_normal(eps, t)) is not None:
                return [], odd
        if not c.z_tracks_grad:
            return [], DETACHED_ENCODER if c.applied is not None and not any(
                c.applied[layer].any() for layer in ENCODER) else DETACHED_Z
        noise.append(eps)
    return noise, None


def _not_standard_normal(eps: Tensor, t: int) -> Observed | None:
    """A mistake named from the implied noise ``(z - mu) / sigma`` ``(B, 20)`` when it is not a
    standard normal draw (one per image and dimension); ``None`` when it is."""
    if len(eps) > 1 and torch.allclose(eps, eps[:1].expand_as(eps), rtol=Z_TOL, atol=Z_TOL):
        return SHARED_NOISE
    mean, std = float(eps.mean()), float(eps.std())
    if abs(mean) <= NOISE_MOMENT_TOL and abs(std - 1) <= NOISE_MOMENT_TOL:
        return None
    return Observed("z is not mu + sigma * eps with eps ~ N(0, I)",
                    f"at call {t}, (z - mu) / sigma has mean {mean:.3g} and standard deviation {std:.3g} over its "
                    f"{eps.numel()} numbers, where a standard normal eps gives about 0 and 1: sample "
                    "z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu).")


def _reduce(per_example: Tensor, how: str) -> Tensor:
    return per_example.sum() if how == "sum" else per_example.mean()


def reduction_mistake(pixels: str, recon_batch: str, latent: str, kl_batch: str, noise: Sequence[Tensor],
                      batch: int = BATCH_SIZE) -> Variant:
    """The step whose reconstruction is summed or averaged over pixels, then over the batch, and
    whose KL over latent dimensions, then over the batch, as given ("sum" / "mean"); the hint
    names each wrong reduction and its effect (an overall factor, or a KL weight beta != 1)."""

    def objective(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        recon = bernoulli_nll(logits, x) / (NUM_PIXELS if pixels == "mean" else 1)
        kl = kl_divergence(mu, logvar) / (LATENT_DIM if latent == "mean" else 1)
        return _reduce(recon, recon_batch) + _reduce(kl, kl_batch)

    recon_parts = [f"averaged over the {NUM_PIXELS} pixels"] * (pixels == "mean") + \
        ["summed over the batch"] * (recon_batch == "sum")
    kl_parts = [f"averaged over the {LATENT_DIM} latent dimensions"] * (latent == "mean") + \
        ["summed over the batch"] * (kl_batch == "sum")
    described = " + ".join([f"reconstruction {' and '.join(recon_parts)}"] * bool(recon_parts)
                           + [f"KL {' and '.join(kl_parts)}"] * bool(kl_parts))
    causes = [cause for wrong, cause in [
        (pixels == "mean", "F.binary_cross_entropy_with_logits' default, reduction='mean', averages over every "
                           "pixel of every image"),
        (recon_batch == "sum", "reduction='sum' sums over the images too"),
        (latent == "mean", "a .mean() over the KL's (B, 20) terms averages over the latent dimensions too"),
        (kl_batch == "sum", "a .sum() over the KL's (B, 20) terms sums over the images too")] if wrong]
    if pixels == latent == "sum" and recon_batch == kl_batch == "sum":
        name = "sum over the batch instead of the mean"
        hint = (f"your loss is B = {batch} times the batch-mean loss: it sums the {batch} images' losses instead "
                "of averaging them. Adam rescales its steps, so training barely notices, but every number you "
                f"print or compare is {batch} times too big, and with plain SGD every step is {batch} times too "
                "long. Average over the batch: loss = (recon + kl).mean().")
        return Variant(name, step_with(objective, noise), hint)
    beta, beta_text = _beta(pixels, recon_batch, latent, kl_batch, batch)
    hint = (f"{'; '.join(causes)}. Relative to the reconstruction, the KL then weighs "
            f"β = {beta_text} instead of 1: "
            + ("it overwhelms the reconstruction, pushes every code towards the prior and blurs the "
               "reconstructions (posterior collapse)." if beta > 1 else
               "it barely counts, so the codes drift from the prior and samples decoded from N(0, I) suffer.")
            + " And the number you return is not in nats per example. Sum each term over its own dimensions "
            "(the BCE over the 784 pixels: reduction='none' then .flatten(1).sum(1); the KL over the 20 latent "
            "dimensions: .sum(1)), add them, and average over the batch: (recon + kl).mean().")
    return Variant(f"{described} (β = {beta_text})", step_with(objective, noise), hint)


def _beta(pixels: str, recon_batch: str, latent: str, kl_batch: str, batch: int) -> tuple[float, str]:
    """The KL's weight relative to the reconstruction under these reductions, as a number and as
    a formula with its value, e.g. ``(39.2, "784/20 = 39.2")`` or ``(0.03125, "1/B = 1/32")``."""
    power = (kl_batch == "sum") - (recon_batch == "sum")  # B appears on top (+1), below (-1) or cancels
    value = (NUM_PIXELS if pixels == "mean" else 1) / (LATENT_DIM if latent == "mean" else 1) * batch ** power
    top = [str(NUM_PIXELS)] * (pixels == "mean") + ["B"] * (power == 1)
    bottom = ["B"] * (power == -1) + [str(LATENT_DIM)] * (latent == "mean")
    formula = "·".join(top) or "1"
    if bottom:
        formula += "/" + (bottom[0] if len(bottom) == 1 else "(" + "·".join(bottom) + ")")
    shown = f"{value:g}" if value >= 1 else f"1/{1 / value:g}"
    return value, formula if formula == shown else f"{formula} = {shown}"


def wrong_steps(noise: Sequence[Tensor], batch: int = BATCH_SIZE) -> list[Variant]:
    """The known wrong loss computations, each a complete step on the given noise with its hint.
    (The order and sampling mistakes are recognised before, from the hooks; "a detached z" is here
    too, for a z that is attached but passes a zero gradient, like ``torch.normal(mu, std)``'s.)"""
    recon, kl = bernoulli_nll, kl_divergence
    kl_formula = "kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)"
    return [
        *[reduction_mistake(p, rb, lat, kb, noise, batch)
          for p in ("sum", "mean") for rb in ("mean", "sum") for lat in ("sum", "mean") for kb in ("mean", "sum")
          if (p, rb, lat, kb) != ("sum", "mean", "sum", "mean")],
        Variant("no KL term", step_with(lambda lg, x, m, lv: recon(lg, x).mean(), noise),
                "the loss is the reconstruction alone: without the KL the encoder's q(z|x) drifts away from the "
                f"prior N(0, I), and decoding z ~ N(0, I) no longer gives digits. Add {kl_formula}."),
        Variant("returns only the reconstruction term", step_with(batch_mean_loss, noise,
                                                                  returned=lambda lg, x, m, lv: recon(lg, x).mean()),
                "your step trains on the right loss but returns the reconstruction term alone: return the "
                "whole loss, reconstruction + KL, the number you called backward() on."),
        Variant("KL sign flipped", step_with(lambda lg, x, m, lv: (recon(lg, x) - kl(m, lv)).mean(), noise),
                "the loss is reconstruction *plus* KL, with KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)) >= 0. "
                "With the sign flipped the optimizer pushes the KL up without limit and the loss runs off to "
                "minus infinity."),
        Variant("KL without its 1/2", step_with(lambda lg, x, m, lv: (recon(lg, x) + 2 * kl(m, lv)).mean(), noise),
                f"the closed-form KL has a factor -1/2 in front of the sum: {kl_formula}."),
        Variant("log-variance used as the variance in the KL",
                step_with(lambda lg, x, m, lv: (recon(lg, x) - 0.5 * (1 + lv - m.pow(2) - lv).sum(1)).mean(), noise),
                "the encoder's second output is log sigma^2: the KL needs sigma^2 = logvar.exp(), not logvar. "
                "With logvar in its place the KL no longer stops sigma from shrinking to 0."),
        Variant("a detached z", step_with(batch_mean_loss, noise, z_of=Tensor.detach), DETACHED_Z_HINT),
        Variant("missing optimizer.zero_grad()", step_with(batch_mean_loss, noise, zero_grad=False),
                "the first call matches, the second applies its gradient plus the first call's: PyTorch adds new "
                "gradients to the old ones. Call optimizer.zero_grad() at the start of every step."),
        Variant("squared error instead of the Bernoulli NLL",
                step_with(lambda lg, x, m, lv: ((torch.sigmoid(lg) - x).pow(2).flatten(1).sum(1) + kl(m, lv)).mean(),
                          noise),
                "the reconstruction term here is the Bernoulli negative log-likelihood of notebook 5, "
                "F.binary_cross_entropy_with_logits(logits, x, reduction='none') summed over pixels, not the "
                "seed's squared error, whose scale against the KL is arbitrary (notebook 8)."),
        Variant("sigmoid applied twice",
                step_with(lambda lg, x, m, lv: (recon(torch.sigmoid(lg), x) + kl(m, lv)).mean(), noise),
                "F.binary_cross_entropy_with_logits applies the sigmoid itself: pass it the decoder's logits, "
                "not torch.sigmoid(logits) (or use F.binary_cross_entropy on the probabilities)."),
        Variant("input and target swapped in the BCE",
                step_with(lambda lg, x, m, lv: (recon(x, lg) + kl(m, lv)).mean(), noise),
                "F.binary_cross_entropy_with_logits(input, target) takes the logits first and the images "
                "second: F.binary_cross_entropy_with_logits(logits, x)."),
    ]


# ------------------------------------------------------------------- diagnosis
def first_difference(calls: Sequence[Call], ref: Sequence[Call]) -> tuple[int, Call, Call]:
    """The first call (1, 2, ...) at which the learner's step and the reference differ, and both calls."""
    return next((t, mine, want) for t, (mine, want) in enumerate(zip(calls, ref), start=1)
                if not same_call(mine, want))


def finding(calls: Sequence[Call], ref: Sequence[Call], kl: float) -> str:
    """What differs, in one sentence: the returned number, or the gradients and in which layers."""
    t, mine, want = first_difference(calls, ref)
    setting = f"on batches of B = {BATCH_SIZE} images, from a model whose KL is {kl:.2f} nats per example"
    if not close_loss(mine.loss, want.loss):
        return (f"{setting}, your step returned {mine.loss:.6g} at call {t}, where the batch-mean loss is "
                f"{want.loss:.6g}.")
    layers = ", ".join(LAYER_ROLES[layer] for layer in differing_layers(mine.applied, want.applied))
    return (f"{setting}, your step returned the right loss at call {t} ({mine.loss:.6g}) but handed optimizer.step() "
            f"other gradients than the reference step, in {layers}.")


def measured_hint(calls: Sequence[Call], ref: Sequence[Call]) -> str:
    """The advice when no known mistake matches, from what the measurements show."""
    t, mine, want = first_difference(calls, ref)
    layers = differing_layers(mine.applied, want.applied)
    silent = [LAYER_ROLES[layer] for layer in layers if mine.applied is not None and not mine.applied[layer].any()]
    if t > 1:
        return ("Hint: your first call matches the reference step and a later one does not: something carries "
                "over from one call to the next (gradients that are not zeroed, or a value kept between calls). "
                "Start every step with optimizer.zero_grad() and compute everything from x.")
    if not layers:
        return (f"Hint: your step trains exactly like the reference step, but the number it returns is "
                f"{mine.loss / want.loss:.4g} times the loss it trains on: return the loss you called backward() "
                "on, loss.detach() or loss.item().")
    if silent:
        return (f"Hint: {', '.join(silent)} got no gradient at all: something between these weights and the loss "
                "is detached (.detach(), .data, .item() or torch.no_grad()).")
    if close_loss(mine.loss, want.loss):
        return ("Hint: call backward() on the loss you return, and keep every path from it to the weights "
                "(no .detach(), .data or .item() on the way).")
    return (f"Hint: your loss is {mine.loss / want.loss:.4g} times the batch-mean loss and its gradients differ "
            f"too. Compare your step with the loop above, line by line: {RECIPE}.")


def diagnose(calls: Sequence[Call], noise: Sequence[Tensor], ref: Sequence[Call]) -> str:
    """The hint for a step whose calls differ from the reference's ``ref``: the known wrong step
    that reproduces them, else what the measurements show."""
    found = next((v for v in wrong_steps(noise) if reproduces(calls, v.fn)), None)
    return f"Hint ({found.name}): {found.hint}" if found is not None else measured_hint(calls, ref)


def _nan_verdict(calls: Sequence[Call]) -> str | None:
    t = next((i for i, c in enumerate(calls, start=1) if not math.isfinite(c.loss)), None)
    if t is None:
        return None
    return (f"on batches of B = {BATCH_SIZE} images, your step returned {calls[t - 1].loss} at call {t}. Hint: a "
            "log or square root of logvar? It can be negative: sigma^2 = logvar.exp() and "
            "sigma = torch.exp(0.5 * logvar).")


# ------------------------------------------------------------------- the check
def check_train_step(fn: StepFn | None) -> bool | None:
    """Check ``fn(model, optimizer, x) -> loss`` by measuring it: on a probe VAE whose KL is large,
    two consecutive calls must return the batch-mean loss and hand ``optimizer.step()`` the same
    gradients as the reference step, on the same noise. When they do not, the verdict names the
    mistake the measurements show. Prints the verdict; returns ``True`` / ``False`` / ``None``
    (not attempted) and never raises."""
    if (usable := unusable(TITLE, fn)) is not True:
        return usable
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers as they were
        try:
            return _judge(fn)
        except NotAttempted:
            not_attempted(TITLE, "your function returns None or raises NotImplementedError.")
            return None
        except StepFailed as err:
            print(f"❌ {TITLE}: {err}")
            return False


def _judge(fn: StepFn) -> bool:
    calls = list(trace(fn))
    if (nan := _nan_verdict(calls)) is not None:
        print(f"❌ {TITLE}: {nan}")
        return False
    mistake: Variant | Observed | None = order_mistake(calls)
    noise: list[Tensor] = []
    if mistake is None:
        noise, mistake = noise_of(calls)
    if mistake is not None:  # the hint states what was observed
        print(f"❌ {TITLE}: tried on batches of B = {BATCH_SIZE} images. Hint ({mistake.name}): {mistake.hint}")
        return False
    ref = list(trace(reference_step(noise)))
    kl = float(kl_divergence(ref[0].mu, ref[0].logvar).mean())
    if all(same_call(mine, want) for mine, want in zip(calls, ref)):
        print(f"✅ {TITLE}: {len(calls)} consecutive steps on batches of B = {BATCH_SIZE} images, from a model whose "
              f"KL is {kl:.2f} nats per example: your step returns the batch-mean loss ({calls[0].loss:.2f} nats "
              "per example at the first step) and hands optimizer.step() the reference step's gradients in every "
              "layer.")
        return True
    print(f"❌ {TITLE}: {finding(calls, ref, kl)} {diagnose(calls, noise, ref)}")
    return False
