"""Where a result came from: the commit, the machine, its load, torch and the date.

Every ``results/*.json`` file the course commits carries these fields so that a
reader can tell how (and how fairly) a number was made. One module owns them;
the benchmark (:mod:`vae_course.bench`), ``evaluate --json`` and the scripts in
``scripts/`` all call it.

Nothing here raises on a machine that lacks something (no git, no
``/proc``): the field is ``None`` instead.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from .device import device_name

# The checkout this copy of the package lives in (None when installed elsewhere).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def git_commit(root: str | os.PathLike | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout at ``root`` (default: this package's).

    ``dirty`` is True when tracked files differ from the commit (untracked files
    are ignored: they do not change what the commit's code computes). Both are
    ``None`` outside a git checkout or without git.
    """
    cwd = Path(root) if root is not None else PACKAGE_ROOT
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (runnable processes), rounded to 0.01."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _cpu_times() -> tuple[int, int] | None:
    """``(busy, total)`` jiffies of all CPUs together, from the first line of ``/proc/stat``."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time: leave it out of the total
    total = sum(values[:8])
    return total - idle, total


def busy_cores(window_s: float = 1.0) -> float | None:
    """How many CPU cores were busy, on average, over the next ``window_s`` seconds.

    Unlike the load average (a one-minute moving average that still remembers
    the previous benchmark run for minutes), this sees only the present:
    called while the caller itself sleeps, it measures *everything else* on the
    machine. Returns cores (0 .. ``os.cpu_count()``), or ``None`` without
    ``/proc/stat`` (not Linux).
    """
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    fraction = (second[0] - first[0]) / (second[1] - first[1])
    return round(fraction * (os.cpu_count() or 1), 2)


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-11-25T20:43:17+00:00``)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def torch_description(device: torch.device | str | None = None) -> dict[str, Any]:
    """torch's version, its CUDA/cuDNN builds and, given a device, its name and the thread count."""
    out: dict[str, Any] = {
        "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "threads": torch.get_num_threads(),
    }
    if device is not None:
        out["device"] = device_name(device)
        out["device_type"] = torch.device(device).type
    return out


def collect(device: torch.device | str | None = None) -> dict[str, Any]:
    """All provenance fields for a results file (JSON-ready).

    Keys: ``commit``, ``dirty``, ``date``, ``cpu_model``, ``cpu_count``,
    ``loadavg`` (1/5/15 min), ``torch_version``, ``cuda_version``,
    ``cudnn_version``, ``threads`` and, with ``device``, ``device`` and
    ``device_type``.
    """
    commit, dirty = git_commit()
    return {"commit": commit, "dirty": dirty, "date": utc_now(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "loadavg": load_average(), **torch_description(device)}
