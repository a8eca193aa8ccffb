"""The engine every check runs on: call the learner's function, compare, name the mistake.

:func:`run_check` calls the learner's function on fixed inputs, compares values,
shapes and (optionally) gradients with a reference, and prints one verdict line:
``✅`` correct, ``❌`` wrong (with a hint when the output matches a known
:class:`Variant`), or ``⏳ not attempted yet`` when the function returns ``None``.
It never raises, so a notebook still runs from top to bottom.

The helpers below have no leading underscore because the per-notebook modules
and the training-step check share them; they are not part of the learner-facing
API (``vae_course.checks`` does not re-export them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

GENERIC_HINT = "Compare your code with the formula above, term by term."


@dataclass
class Variant:
    """A known wrong answer: how it is computed and what to tell the learner."""

    name: str
    fn: Callable[..., Any]
    hint: str


def not_attempted(title: str, why: str = "fill in the function above, then re-run this cell.") -> None:
    """Print the "not attempted" line; the checks return ``None`` right after."""
    print(f"⏳ {title}: not attempted yet — {why}")


def unusable(title: str, fn: Any) -> bool | None:
    """The verdict on an answer that cannot be run, printed: ``None`` when the learner has not
    written it yet (``fn is None``), ``False`` when it is not a function. ``True`` means
    "usable": go on and check it."""
    if fn is None:
        not_attempted(title)
        return None
    if not callable(fn):
        print(f"❌ {title}: expected a function, got {type(fn).__name__}.")
        return False
    return True


def as_tensor(out: Any) -> Tensor | None:
    """The learner's output as a tensor (Python numbers become 0-d tensors); ``None`` if it is neither."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (int, float)):
        return torch.tensor(float(out))
    return None


def close(a: Tensor, b: Tensor, rtol: float, atol: float, equal_nan: bool = False) -> bool:
    """Same shape and ``allclose`` in float64."""
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=equal_nan)


def clone_args(args: Sequence[Any], grad: bool) -> list[Any]:
    """Fresh copies of the floating-point tensors in ``args`` (so a learner's in-place edit
    cannot change the next call's input), requiring grad if ``grad``; other values as they are."""
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.is_floating_point():
            a = a.detach().clone().requires_grad_(grad)
        out.append(a)
    return out


def grads(fn: Callable, args: Sequence[Any], seed: int | None) -> tuple[Tensor | None, list[Tensor | None]]:
    """Run ``fn`` on fresh copies of ``args`` and return (output, d sum(output) / d args)."""
    inputs = clone_args(args, grad=True)
    if seed is not None:
        torch.manual_seed(seed)
    out = as_tensor(fn(*inputs))
    if out is None or not out.requires_grad:
        return out, [None for _ in inputs]
    found = torch.autograd.grad(out.sum(), [a for a in inputs if isinstance(a, Tensor) and a.requires_grad],
                                allow_unused=True)
    return out.detach(), list(found)


def run_check(
    title: str,
    fn: Callable[..., Any] | None,
    reference: Callable[..., Any],
    cases: Sequence[Sequence[Any]],
    variants: Sequence[Variant] = (),
    check_grad: bool = False,
    seed: int | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> bool | None:
    """Compare ``fn`` with ``reference`` on every input in ``cases``; print a verdict.

    ``seed`` re-seeds torch before each call, so functions that draw random
    numbers (like ``reparameterize``) can be compared exactly.
    Returns ``True`` (correct), ``False`` (wrong) or ``None`` (not attempted).
    """
    if (usable := unusable(title, fn)) is not True:
        return usable
    outputs = []
    for args in cases:
        try:
            if seed is not None:
                torch.manual_seed(seed)
            raw = fn(*clone_args(args, grad=False))
        except Exception as err:  # the learner's code may fail in any way
            print(f"❌ {title}: your function raised {type(err).__name__}: {err}")
            return False
        if raw is None:
            not_attempted(title, "your function returns None.")
            return None
        out = as_tensor(raw)
        if out is None:
            print(f"❌ {title}: expected a tensor, got {type(raw).__name__}.")
            return False
        outputs.append(out.detach())
    expected = []
    for args in cases:
        if seed is not None:
            torch.manual_seed(seed)
        expected.append(as_tensor(reference(*clone_args(args, grad=False))).detach())
    for out, ref in zip(outputs, expected):
        if out.shape != ref.shape:
            hint = recognise(outputs, cases, variants, seed, rtol, atol)
            print(f"❌ {title}: output shape {tuple(out.shape)}, expected {tuple(ref.shape)}. {hint}")
            return False
        if not close(out, ref, rtol, atol):
            hint = recognise(outputs, cases, variants, seed, rtol, atol)
            print(f"❌ {title}: the values are wrong. {hint}".rstrip())
            return False
    if check_grad:
        for args in cases:
            _, got = grads(fn, args, seed)
            _, want = grads(reference, args, seed)
            for g, w in zip(got, want):
                if w is not None and (g is None or not close(g, w, rtol, atol)):
                    print(f"❌ {title}: the values are right but the gradients are not — did you use "
                          f".detach(), .item(), .sample() or a non-differentiable step?")
                    return False
    print(f"✅ {title}: correct on {len(cases)} test inputs" + (" (values and gradients)." if check_grad else "."))
    return True


def matching_variant(outputs: Sequence[Tensor], cases: Sequence[Sequence[Any]], variants: Sequence[Variant],
                     seed: int | None, rtol: float, atol: float) -> Variant | None:
    """The first variant whose outputs on ``cases`` equal ``outputs`` (NaN matching NaN), or ``None``."""
    for v in variants:
        try:
            matches = True
            for out, args in zip(outputs, cases):
                if seed is not None:
                    torch.manual_seed(seed)
                wrong = as_tensor(v.fn(*clone_args(args, grad=False)))
                if wrong is None or not close(out, wrong.detach(), rtol, atol, equal_nan=True):
                    matches = False
                    break
        except Exception:  # a variant that cannot run on these inputs simply does not match
            matches = False
        if matches:
            return v
    return None


def recognise(outputs: Sequence[Tensor], cases: Sequence[Sequence[Any]], variants: Sequence[Variant],
              seed: int | None, rtol: float, atol: float) -> str:
    """The hint to print: the matching variant's, or the generic one."""
    v = matching_variant(outputs, cases, variants, seed, rtol, atol)
    return f"Hint ({v.name}): {v.hint}" if v is not None else GENERIC_HINT
