"""The learning-rate and KL-weight schedules (vae_course.schedules)."""
from __future__ import annotations

import math

import pytest

from vae_course.config import TrainConfig
from vae_course.schedules import LR_SCHEDULES, beta_at, lr_at


@pytest.mark.parametrize("progress", [0.0, 0.25, 0.5, 0.9, 1.0, 1.7, -0.2])
def test_cosine_is_the_formula_and_constant_is_constant(progress):
    t = min(max(progress, 0.0), 1.0)
    assert lr_at(2e-3, "cosine", progress) == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * t)), abs=1e-15)
    assert lr_at(2e-3, "constant", progress) == 2e-3


def test_cosine_endpoints_and_unknown_schedule():
    assert lr_at(1.0, "cosine", 0.0) == 1.0 and lr_at(1.0, "cosine", 0.5) == pytest.approx(0.5)
    assert lr_at(1.0, "cosine", 1.0) == pytest.approx(0.0, abs=1e-15)
    assert set(LR_SCHEDULES) == {"constant", "cosine"}
    with pytest.raises(ValueError, match="lr_schedule: unknown choice 'step'"):
        lr_at(1.0, "step", 0.5)


def test_beta_warmup_ramps_linearly_then_stays():
    assert [beta_at(2.0, 4.0, p) for p in (0, 1, 2, 4, 9)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    assert beta_at(0.7, 0.0, 0.0) == 0.7  # no warm-up: constant from the first step


# ---------------------------------------------------------------- the LR schedule
@pytest.mark.parametrize("progress, expected", [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (0.25, 0.8535534), (2.0, 0.0)])
def test_cosine_schedule_values(progress, expected):
    # lr * (1 + cos(pi t)) / 2
    assert lr_at(1.0, "cosine", progress) == pytest.approx(expected, abs=1e-7)
    assert lr_at(3e-3, "constant", progress) == 3e-3


def test_unknown_schedule_is_rejected():
    assert LR_SCHEDULES == ("constant", "cosine")
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear").validate()
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_at(1.0, "step", 0.5)
