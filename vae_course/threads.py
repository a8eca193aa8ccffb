"""How many torch threads CPU training uses: no more than the CPUs that nothing else keeps busy.

Measured (``scripts/thread_study.py``, ``vae_course/results/thread_study.json``,
shown on the results page): on a 2-core machine the seed's VAE at 2 torch
threads runs several times slower as soon as one other process keeps a core
busy, while at 1 thread it loses nothing. Each large operation is split across
the threads and ends at a barrier. When the kernel gives one thread's core to
the other process, its partner reaches the barrier and spins (libgomp's default
wait policy) while it waits, operation after operation; the run's CPU seconds
grow for the same work. Threads that each have a CPU to themselves rarely wait.

torch already starts with one thread per physical core (not per hyper-thread:
on Colab's 2 vCPUs, one physical core, it uses 1). This module lowers that, at
the start of a CPU run, when torch's threads and the logical CPUs that other
processes keep busy (measured over a fraction of a second) add up to more than
the machine has. ``--threads N`` or ``OMP_NUM_THREADS`` overrides it.
"""
from __future__ import annotations

import math
import os

import torch

from .provenance import busy_cores

BUSY_CPU = 0.5  # another process keeping at least half a logical CPU busy counts as one busy CPU
WINDOW_S = 0.3  # how long to watch the machine before training (seconds)


def fair_threads(available: int, busy: float | None, cpus: int) -> int:
    """torch's ``available`` threads, lowered so that they and the ``busy`` logical CPUs (others' work)
    fit in the machine's ``cpus`` logical CPUs; at least 1."""
    if busy is None or busy < BUSY_CPU:
        return available
    return max(1, min(available, cpus - math.floor(busy + BUSY_CPU)))


def choose_cpu_threads(requested: int | None = None) -> str | None:
    """Set torch's thread count for CPU training; returns a one-line note when it was lowered.

    ``requested``: the user's ``--threads`` (used as given). Without it, and
    without ``OMP_NUM_THREADS`` in the environment (the user's choice, which
    torch already applied), the count becomes :func:`fair_threads` of torch's
    default and the logical CPUs busy right now.
    """
    if requested is not None:
        torch.set_num_threads(requested)
        return None
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    default, cpus = torch.get_num_threads(), os.cpu_count() or 1
    busy = busy_cores(WINDOW_S)
    threads = fair_threads(default, busy, cpus)
    if threads >= default:
        return None
    torch.set_num_threads(threads)
    return (f"Other processes keep {busy:.1f} of {cpus} logical CPUs busy: training with {threads} torch "
            f"thread{'s' if threads > 1 else ''} instead of {default}, since torch threads that share a CPU "
            f"with another process wait on each other (--threads {default} or OMP_NUM_THREADS overrides this).")
