"""How the learning rate and the KL weight beta move during training.

Both are plain functions of *progress*, so a resumed run recomputes exactly the
value an uninterrupted run would have used (nothing to store but the settings).
"""
from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine")


def lr_at(lr: float, schedule: str, progress: float) -> float:
    """The learning rate after ``progress`` (a fraction in [0, 1]) of all training steps.

    ``"constant"``: ``lr`` throughout. ``"cosine"``: ``lr * (1 + cos(pi * progress)) / 2``,
    which starts at ``lr``, is ``lr / 2`` half-way and reaches 0 at the end: large
    steps early to make fast progress, small steps late to settle into a minimum.
    Progress beyond 1 (training past the planned end) keeps the final value.
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        t = min(max(progress, 0.0), 1.0)
        return lr * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"lr_schedule: unknown choice {schedule!r}; choose one of {LR_SCHEDULES}")


def beta_at(beta: float, warmup_epochs: float, epoch_progress: float) -> float:
    """The KL weight after ``epoch_progress`` epochs (a float: 1.5 is half-way through epoch 2).

    With ``warmup_epochs > 0`` beta ramps linearly from 0 to ``beta`` over that many
    epochs ("KL annealing"), so the decoder learns to use z before the KL term
    pushes the posterior towards the prior. Otherwise beta is constant.
    """
    if warmup_epochs > 0:
        return beta * min(1.0, epoch_progress / warmup_epochs)
    return beta
