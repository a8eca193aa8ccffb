"""Checks used by notebook 6: convolution output sizes (the IWAE check is covered by test_engine.py)."""
import torch

from vae_course import checks


def test_check_conv_output_size(capsys):
    assert checks.check_conv_output_size(None) is None
    assert "not attempted" in capsys.readouterr().out
    assert checks.check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) // s + 1) is True
    assert checks.check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) / s + 1) is False
    assert "round the division down" in capsys.readouterr().out
    assert checks.check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) // s) is False
    assert "+ 1" in capsys.readouterr().out


def test_check_iwae_curve(capsys):
    from vae_course.checks.nb06 import iwae_curve

    assert checks.check_iwae_curve(None) is None
    assert checks.check_iwae_curve(iwae_curve) is True
    assert checks.check_iwae_curve(lambda lw, ks: -iwae_curve(lw, ks)) is False
    assert "positive NLL" in capsys.readouterr().out
    assert checks.check_iwae_curve(lambda lw, ks: torch.stack([-lw.mean()] * len(ks))) is False
