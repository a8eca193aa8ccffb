"""Small helpers shared by the per-notebook check tests."""
from __future__ import annotations


def verdict(capsys, check, fn):
    """Run ``check(fn)``; return its result and what it printed."""
    result = check(fn)
    return result, capsys.readouterr().out


def assert_recognised(capsys, check, fn, variant_name):
    """``check(fn)`` fails and names ``variant_name`` in its hint."""
    result, out = verdict(capsys, check, fn)
    assert result is False, out
    assert f"Hint ({variant_name})" in out, out
