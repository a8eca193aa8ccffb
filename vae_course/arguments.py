"""Argument types for the command line: each turns a flag's text into a number or
says, in one line, what was wrong (argparse prints it and exits with status 2).
Shared by ``cli`` and ``bench`` (which must not import each other). The ranges
come from :mod:`vae_course.bounds`, the one set the trainer and the loader use:
:func:`apply_bounds` puts them on every flag a parser has."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from .bounds import BOUNDS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    return positive_int(text) if text.strip() != "0" else 0


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive number, got 0")
    return value


def bounded(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """``parse`` followed by the check of :data:`vae_course.bounds.BOUNDS` ``[name]``: a value
    out of range is a one-line usage error (exit status 2), before anything is loaded."""
    bound = BOUNDS[name]

    def parse_bounded(text: str) -> Any:
        value = parse(text)
        if not bound.accepts(value):
            raise argparse.ArgumentTypeError(f"expected {bound.describe()}{bound.reason()}, got {text.strip()[:40]}")
        return value

    parse_bounded.__name__ = getattr(parse, "__name__", name)  # argparse names the type in some messages
    return parse_bounded


def apply_bounds(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Bound every flag of ``parser`` (and of its subcommands) whose destination has an
    entry in :data:`vae_course.bounds.BOUNDS` (``--latent-dim``, ``--seed``, ``--iw-samples`` ...),
    so the command line refuses exactly what the trainer and the loader would refuse."""
    for action in parser._actions:  # argparse keeps no public list of its actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                apply_bounds(sub)
        elif action.dest in BOUNDS and callable(action.type) and not hasattr(action.type, "__wrapped_bound__"):
            action.type = bounded(action.type, action.dest)
            action.type.__wrapped_bound__ = True
    return parser
