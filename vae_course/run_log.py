"""A run folder's diary: ``sessions.jsonl``, one line each time training starts, resumes or stops.

A long run trained across interruptions (a laptop closed, a Colab time-out, a
maintainer's session ending) is several sessions of one run. The checkpoint
holds the weights and each epoch's numbers; this file says *when and where*
each part ran, so a published result can list every resume with its commit,
device and thread count (``scripts/record_long_run.py`` copies it into the
result JSON). One JSON object per line, appended, never rewritten::

    {"event": "start", "epoch": 0, "utc": "2026-12-07T22:10:03+00:00", "commit": "0e1f...", "dirty": false,
     "device": "cpu (1 thread)", "torch": "2.14.1+cu130", "cpu_model": "AMD EPYC", "command": "python -m ..."}
    {"event": "interrupted", "epoch": 57, "utc": "...", "signal": "SIGTERM"}
    {"event": "resume", "epoch": 57, ...}
    {"event": "finished", "epoch": 200, "utc": "..."}

``epoch`` is the number of epochs done when the line was written.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import torch

from .commands import cli_prefix, shell_join
from .provenance import cpu_model, git_commit, utc_now
from .run_folder import DIARY_NAME as LOG_NAME


def session_facts(device: torch.device) -> dict[str, Any]:
    """Where this process trains: commit (and whether the tree was dirty), device, threads, torch, CPU, command."""
    commit, dirty = git_commit()
    threads = torch.get_num_threads()
    where = str(device) if device.type != "cpu" else f"cpu ({threads} thread{'s' if threads != 1 else ''})"
    return {"commit": commit, "dirty": dirty, "device": where, "torch": str(torch.__version__),
            "cpu_model": cpu_model(), "command": command_line()}


def command_line() -> str:
    """This process's command, as the CLI would be typed (``python -m vae_course train ...``)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if program in ("__main__.py", "vae-course", "vae_course"):  # the CLI itself: its arguments after the prefix
        return shell_join([*cli_prefix(), *sys.argv[1:]])
    return shell_join([Path(sys.executable).name, *sys.argv])  # a script or a notebook kernel


def append_event(folder: str | os.PathLike, event: str, epoch: int, **facts: Any) -> None:
    """Append one line to ``folder/sessions.jsonl`` (created on first use)."""
    line = json.dumps({"event": event, "epoch": epoch, "utc": utc_now(), **facts}) + "\n"
    path = Path(folder) / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)  # a library Trainer's out_dir may not exist yet
    # O_NOFOLLOW and one name only: a link planted in the folder cannot make the run append elsewhere
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(errno.EPERM, "the run's diary is not a regular file with one name; remove it", str(path))
        if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
            line = "\n" + line  # a line cut short by a kill stays alone (and is skipped on reading)
        os.write(fd, line.encode("utf-8"))
    except OSError as err:  # name the file (a full disk's error names none)
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        os.close(fd)


def read_events(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every line of ``folder/sessions.jsonl`` (empty when the run kept none); a damaged line is skipped."""
    path = Path(folder) / LOG_NAME
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill: the others still stand
            continue
        if isinstance(record, dict) and "event" in record:
            events.append(record)
    return events
