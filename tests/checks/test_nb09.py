"""Checks used by notebook 9: the AUROC and bits per dimension."""
import math

from vae_course import applications as A
from vae_course import checks


def test_check_auroc_paths(capsys):
    assert checks.check_auroc(lambda a, b: None) is None
    assert checks.check_auroc(A.auroc) is True
    assert checks.check_auroc(lambda a, b: 1 - A.auroc(a, b)) is False
    assert "higher" in capsys.readouterr().out
    strict = lambda a, b: float((b[:, None] > a[None, :]).double().mean())  # noqa: E731
    assert checks.check_auroc(strict) is False
    assert "ties" in capsys.readouterr().out


def test_check_bits_per_dim_paths(capsys):
    assert checks.check_bits_per_dim(lambda nll: None) is None
    assert checks.check_bits_per_dim(lambda nll: nll / (784 * math.log(2))) is True
    assert checks.check_bits_per_dim(lambda nll: nll / 784) is False
    assert "ln 2" in capsys.readouterr().out
    assert checks.check_bits_per_dim(lambda nll: nll / math.log(2)) is False
