"""Checks used by notebook 7: slerp and the aggregate posterior log q(z)."""
import math

import torch

from vae_course import checks, interpolation, losses


def test_check_slerp(capsys):
    assert checks.check_slerp(None) is None
    assert checks.check_slerp(interpolation.slerp) is True
    assert checks.check_slerp(lambda z0, z1, t: torch.lerp(z0, z1, t[:, None])) is False
    assert "lerp" in capsys.readouterr().out
    assert checks.check_slerp(lambda z0, z1, t: interpolation.slerp(z1, z0, t)) is False
    assert "t = 0" in capsys.readouterr().out


def test_check_aggregate_posterior(capsys):
    ref = losses.aggregate_posterior_log_density
    assert checks.check_aggregate_posterior(None) is None
    assert checks.check_aggregate_posterior(ref) is True
    assert checks.check_aggregate_posterior(lambda z, m, lv: ref(z, m, lv) + math.log(len(m))) is False
    assert "log N" in capsys.readouterr().out
    assert checks.check_aggregate_posterior(lambda z, m, lv: ref(z, m, lv / 2)) is False
    assert "variance" in capsys.readouterr().out
