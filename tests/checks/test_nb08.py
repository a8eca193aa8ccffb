"""Checks used by notebook 8: active units and the free-bits KL."""
from vae_course import checks


def test_check_active_units_paths(capsys):
    assert checks.check_active_units(lambda mu: None) is None
    assert checks.check_active_units(lambda mu: int((mu.var(0) > 0.01).sum())) is True
    assert checks.check_active_units(lambda mu: int((mu.std(0) > 0.01).sum())) is False
    assert "standard deviation" in capsys.readouterr().out
    assert checks.check_active_units(lambda mu: int((mu.mean(0).abs() > 0.01).sum())) is False


def test_check_free_bits_paths(capsys):
    from vae_course.losses import free_bits_kl, kl_per_dimension
    assert checks.check_free_bits(lambda m, lv, lam: None) is None
    assert checks.check_free_bits(free_bits_kl) is True
    per_example = lambda m, lv, lam: kl_per_dimension(m, lv).clamp(min=lam).sum(-1).mean()  # noqa: E731
    assert checks.check_free_bits(per_example) is False
    assert "minibatch" in capsys.readouterr().out
    assert checks.check_free_bits(lambda m, lv, lam: kl_per_dimension(m, lv).mean(0).clamp(max=lam).sum()) is False
