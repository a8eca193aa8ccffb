"""Stopping training cleanly: one handler for every signal that means "stop".

Ctrl-C (SIGINT), what Colab, Slurm and preemption send (SIGTERM) and a closed
terminal (SIGHUP) all do the same: the running step finishes, the trainer saves a
checkpoint and raises :class:`TrainingInterrupted`; the CLI exits with 128 + the
signal's number.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
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


# The signals that mean "stop": Ctrl-C, what Colab/Slurm/preemption send, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals:
    """One handler for every stop signal, active inside ``with StopSignals() as stop:``.

    The first signal only sets ``stop.signum``: the running step finishes and the
    trainer saves and stops. A second one stops at once (``TrainingInterrupted``),
    except during a save (``with stop.saving():``), which always completes: a
    checkpoint is never abandoned half-way, and no traceback is printed.

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
            self.signum = signum
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




