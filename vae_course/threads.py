"""How many torch threads CPU training uses: the cores that nothing else keeps busy.

Measured (``scripts/thread_study.py``, ``vae_course/results/thread_study.json``):
on a 2-core machine, the seed's VAE at 2 torch threads runs about 4x slower
as soon as one other process keeps a core busy, while at 1 thread it loses
nothing. Each matrix multiply and element-wise op is split across the threads
and ends at a barrier; when the kernel takes a core away from one thread, the
others wait for it, spinning (libgomp's default wait policy), for up to a
scheduler time slice, op after op. The run's CPU seconds almost triple while
it does less work. One thread per *free* core never waits on a thread that is
not running.

torch already starts with one thread per physical core (not per hyper-thread:
on Colab's 2 vCPUs, one physical core, it uses 1). This module lowers that at
the start of a CPU run by the cores other processes keep busy, measured over a
fraction of a second. ``--threads N`` (or ``OMP_NUM_THREADS``) overrides it.
"""
from __future__ import annotations

import math
import os

import torch

from .provenance import busy_cores

BUSY_CORE = 0.5  # another process keeping at least half a core busy counts as one busy core
WINDOW_S = 0.3  # how long to watch the machine before training (seconds)


def fair_threads(available: int, busy: float | None) -> int:
    """``available`` threads minus the cores others keep busy (``busy``, in cores), at least 1."""
    if busy is None or busy < BUSY_CORE:
        return available
    return max(1, available - math.floor(busy + BUSY_CORE))


def choose_cpu_threads(requested: int | None = None) -> str | None:
    """Set torch's thread count for CPU training; returns a one-line note when it was lowered.

    ``requested``: the user's ``--threads`` (used as given). Without it, and
    without ``OMP_NUM_THREADS`` in the environment (the user's choice, which
    torch already applied), the count becomes :func:`fair_threads` of torch's
    default and the cores busy right now.
    """
    if requested is not None:
        torch.set_num_threads(requested)
        return None
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    default = torch.get_num_threads()
    busy = busy_cores(WINDOW_S)
    threads = fair_threads(default, busy)
    if threads >= default:
        return None
    torch.set_num_threads(threads)
    return (f"Other processes keep {busy:.1f} of {os.cpu_count()} cores busy: training with {threads} torch "
            f"thread{'s' if threads > 1 else ''} instead of {default}, since threads sharing a core wait on "
            f"each other (add --threads {default} to use them all anyway).")
