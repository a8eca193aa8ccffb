"""Stopping training cleanly: one handler for every signal that means "stop".

Ctrl-C (SIGINT), what Colab, Slurm and preemption send (SIGTERM) and a closed
terminal (SIGHUP) all do the same: the running step finishes, the trainer saves a
checkpoint and raises :class:`TrainingInterrupted`; the CLI exits with 128 + the
signal's number.

Before any of that exists, while Python is still importing torch (seconds),
:func:`install_startup_handlers` makes the same signals end the CLI with one line
and 128 + n instead of a traceback (Ctrl-C) or a silent kill (SIGTERM, SIGHUP).
This module imports nothing heavy, so the package can install them first.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal (after saving, unless it was a second signal).

    A ``KeyboardInterrupt``, so a notebook's "Run all" stops; ``signum`` says
    which signal, and the CLI exits with ``128 + signum`` like any program
    stopped by it (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    """

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)

    def _render_traceback_(self) -> list[str]:
        """What a notebook shows: the message (what was saved, how to go on), not a traceback."""
        return [f"{type(self).__name__}: {' '.join(str(self).split())}"]


# The signals that mean "stop": Ctrl-C, what Colab/Slurm/preemption send, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# A copy of the same signal this soon after the first is the same request, not a second one:
# launchers forward a signal the process already got from the terminal or the job system
# (make and torchrun send SIGTERM on to their children; Slurm signals every process).
DUPLICATE_WINDOW_S = 1.0


# ---------------------------------------------------------------- start-up
def started_as_cli(orig_argv: list[str] | None = None, argv: list[str] | None = None) -> bool:
    """True while the package is imported to run the CLI: ``python [...] -m vae_course``
    or the ``vae-course`` script (not a notebook, not ``import vae_course`` in a script,
    not ``-m vae_course.bench_runs``). Python sets ``sys.argv[0]`` to ``"-m"`` while
    it imports the package of a ``-m`` module."""
    orig = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    argv = list(sys.argv if argv is None else argv)
    if argv[:1] == ["-m"]:
        return any(a == "-m" and b == "vae_course" for a, b in zip(orig, orig[1:]))
    return bool(argv) and Path(argv[0]).name in ("vae-course", "vae-course.exe")


def _exit_while_starting(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    try:
        os.write(2, f"Interrupted by {name} while starting, before anything was trained; nothing was written.\n"
                 .encode())
    except OSError:
        pass
    raise SystemExit(128 + signum)  # unwinds the import (no traceback), exit code 128 + n


def install_startup_handlers() -> None:
    """Make every stop signal end the process with one line and ``128 + n`` from now on.

    Called as the package is imported by the CLI (``vae_course/__init__.py``,
    before torch loads); the CLI replaces these handlers with its own as soon as
    it runs, and training with :class:`StopSignals`.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, _exit_while_starting)


class StopSignals:
    """One handler for every stop signal, active inside ``with StopSignals() as stop:``.

    The first signal only sets ``stop.signum``: the running step finishes and the
    trainer saves and stops. A second one stops at once (``TrainingInterrupted``),
    except during a save (``with stop.saving():``), which always completes: a
    checkpoint is never abandoned half-way, and no traceback is printed. The
    same signal again within :data:`DUPLICATE_WINDOW_S` counts as the first
    (a launcher forwarding it), not as a second.

    ``escalate=False`` (under ``torchrun``): a second signal is only noted. A
    Ctrl-C reaches every rank twice (from the terminal, then forwarded by
    torchrun), and a rank that stopped at once would leave the others waiting
    in a collective; torchrun itself kills ranks that are still alive 30 s after
    it forwarded the signal.
    """

    def __init__(self, escalate: bool = True) -> None:
        self.signum: int | None = None
        self.escalate = escalate
        self._saving = False
        self._first_at = 0.0  # time.monotonic() of the first signal
        self._previous: dict[int, Any] = {}

    @property
    def raised(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum, self._first_at = signum, time.monotonic()
        elif signum == self.signum and time.monotonic() - self._first_at < DUPLICATE_WINDOW_S:
            return  # the same signal forwarded by a launcher: still the first request
        elif self.escalate and not self._saving:
            raise TrainingInterrupted(
                f"Stopped at once by a second {signal.Signals(signum).name}; the last checkpoint was kept.", signum)

    @contextmanager
    def saving(self) -> Iterator[None]:
        """Signals arriving inside this block wait until it ends."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
