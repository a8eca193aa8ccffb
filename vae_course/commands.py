"""The commands the package tells you to run, written so that pasting them is safe.

A suggested command ("Resume with: ...") is built from words and joined with
:func:`shlex.join`, so a folder called ``my run`` or ``x;touch PWNED`` is one
quoted word, never two words or a second command. It starts with the program
you really ran:

* ``<this python> -m vae_course`` (``sys.executable``: it works whether or not
  the environment is activated), or the ``vae-course`` script if that was used;
* under ``torchrun``, the launcher's own command line up to ``-m vae_course``
  (read from the parent process on Linux; elsewhere its equivalent
  ``<python> -m torch.distributed.run --nproc-per-node N -m vae_course``);
* under ``python -m vae_course launch``, that launcher (it tells its ranks how it
  was started through :data:`LAUNCH_ENV`).

Imports nothing heavy (no torch), so the start-up code may use it.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

# Set by `python -m vae_course launch` for its ranks: the words that start the same launch.
LAUNCH_ENV = "VAE_COURSE_LAUNCH"
SCRIPT_NAMES = ("vae-course", "vae-course.exe")  # the console script pyproject.toml installs


def shell_join(words: Sequence[str]) -> str:
    """``words`` as one POSIX shell line, each quoted as needed (``shlex.join``)."""
    return shlex.join(str(w) for w in words)


def _launcher_from_parent() -> list[str] | None:
    """The torchrun command of this rank's parent process, up to ``-m vae_course`` (Linux)."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    words = [w.decode(errors="surrogateescape") for w in raw.split(b"\0") if w]
    for i in range(len(words) - 1):
        if words[i] in ("-m", "--module") and words[i + 1] == "vae_course":
            head = words[:i]
            # A console script shows as "<python> <path>/torchrun ...": the script is what was typed.
            if len(head) >= 2 and Path(head[1]).name.startswith("torchrun"):
                head = head[1:]
            return [*head, "-m", "vae_course"] if head else None
    return None


def cli_prefix(local_world_size: int | None = None) -> list[str]:
    """The words that start the CLI the way this process was started.

    ``local_world_size``: given under torchrun (processes per machine), for the
    fallback ``python -m torch.distributed.run --nproc-per-node N`` form.
    """
    launch = os.environ.get(LAUNCH_ENV)
    if local_world_size is not None:
        if launch:
            return shlex.split(launch)
        parent = _launcher_from_parent()
        if parent:
            return parent
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(local_world_size),
                "-m", "vae_course"]
    if sys.argv and Path(sys.argv[0]).name in SCRIPT_NAMES:
        return [sys.argv[0]]
    return [sys.executable or "python", "-m", "vae_course"]


def resume_command(out_dir: str | os.PathLike, epochs: int, local_world_size: int | None = None) -> str:
    """The shell line that continues the run saved in ``out_dir`` up to ``epochs`` epochs."""
    # --out=PATH, one word: a folder whose name starts with "-" is not taken for a flag.
    return shell_join([*cli_prefix(local_world_size), "train", f"--out={os.fspath(out_dir)}", "--resume",
                       "--epochs", str(epochs)])
