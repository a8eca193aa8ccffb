"""Running a trained model over a whole dataset: in eval mode, batch by batch.

Every measurement in the course (the test ELBO, the IWAE estimate, latent codes,
active units, reconstruction at the mean, imputation) walks the images in
fixed-size batches with the model in eval mode. This module owns that walk, so
each measurement is only its own arithmetic.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

__all__ = ["device_of", "eval_mode", "batches"]


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s (first) parameters: where its inputs must go."""
    return next(model.parameters()).device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then back in the mode it was in,
    even if the block is interrupted (a learner's Ctrl-C must not leave a model that
    is being trained in eval mode)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def batches(x: Tensor, y: Tensor | None = None, batch_size: int = 2000,
            device: torch.device | str | None = None) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``(x_batch, y_batch)`` slices of ``x`` ``(n, ...)`` and labels ``y`` ``(n,)`` in order,
    ``batch_size`` at a time (the last may be shorter); ``y_batch`` is ``None`` without
    labels. With ``device``, each batch is moved there when it is reached (never the
    whole set at once)."""
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        if device is not None:
            xb = xb.to(device)
            yb = None if yb is None else yb.to(device)
        yield xb, yb
