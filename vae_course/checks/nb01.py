"""Checks for notebook 1 (the autoencoder): the seed's squared error and the encoder by hand."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.func import functional_call

from ..models import Autoencoder

from . import engine
from .cases import reconstruction_cases
from .engine import Variant


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """The seed's ``||x - x_hat||^2`` per image, ``(batch,)``, in squared pixel intensity."""
    return (x - x_hat).pow(2).flatten(1).sum(1)


def check_squared_error(fn: Callable[[Tensor, Tensor], Tensor] | None) -> bool | None:
    """Check ``fn(x_hat, x) -> (batch,)``: the seed's ``||x - x_hat||^2``, summed over pixels.

    ``x_hat`` and ``x`` are ``(batch, 1, 28, 28)`` in [0, 1]; the answer is one
    squared error per image (units: squared pixel intensity).
    """
    variants = [
        Variant("mean over pixels", lambda xh, x: squared_error(xh, x) / x[0].numel(),
                "sum the squared errors over the 784 pixels; a mean divides the error by 784."),
        Variant("one number for the whole batch", lambda xh, x: squared_error(xh, x).sum(),
                "return one error per image, shape (batch,): sum over pixels only (x.flatten(1).sum(1))."),
        Variant("F.mse_loss with its default reduction", lambda xh, x: (x - xh).pow(2).mean(),
                "F.mse_loss averages over everything by default; use reduction='none' and sum per image."),
        Variant("absolute error", lambda xh, x: (x - xh).abs().flatten(1).sum(1),
                "square the differences: ||x - x_hat||^2 = sum of (x - x_hat)^2."),
        Variant("norm instead of squared norm", lambda xh, x: squared_error(xh, x).sqrt(),
                "the seed's loss is the *squared* norm: don't take the square root."),
    ]
    return engine.run_check("squared_error", fn, squared_error, reconstruction_cases(), variants, check_grad=True)


def encoder_forward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """The package's :class:`~vae_course.models.Autoencoder` encoder run with the given weights:
    ``relu(x_flat @ w1.T + b1) @ w2.T + b2``, ``(batch, latent)`` (differentiable in every argument)."""
    with torch.device("meta"):  # a weightless shell: building it draws no random numbers
        model = Autoencoder(latent_dim=w2.shape[0], hidden_dim=w1.shape[0])
    # encoder = Sequential(Flatten, Linear, ReLU, Linear): the Linear layers are entries 1 and 3.
    weights = {"1.weight": w1, "1.bias": b1, "3.weight": w2, "3.bias": b2}
    return functional_call(model.encoder, weights, (x,))


def encoder_cases() -> list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]:
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
    variants = [
        Variant("no ReLU", lambda x, w1, b1, w2, b2: (x.flatten(1) @ w1.T + b1) @ w2.T + b2,
                "apply torch.relu to the hidden layer: without it the two layers collapse into one linear map."),
        Variant("ReLU on the code too", lambda x, w1, b1, w2, b2: torch.relu(encoder_forward(x, w1, b1, w2, b2)),
                "no activation after the last layer: a ReLU there would forbid negative codes."),
        Variant("sigmoid instead of ReLU",
                lambda x, w1, b1, w2, b2: torch.sigmoid(x.flatten(1) @ w1.T + b1) @ w2.T + b2,
                "the package's encoder uses a ReLU (torch.relu) in the hidden layer."),
        Variant("biases forgotten", lambda x, w1, b1, w2, b2: torch.relu(x.flatten(1) @ w1.T) @ w2.T,
                "each nn.Linear computes x @ W.T + b: add the biases b1 and b2."),
    ]
    return engine.run_check("encoder_forward", fn, encoder_forward, encoder_cases(), variants, check_grad=True)
