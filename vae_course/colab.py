"""Colab helpers: keep a notebook's checkpoints where a Colab time-out cannot erase them.

A Colab runtime's disk disappears with the runtime (an idle time-out, the daily
limit, a closed tab), and with it every checkpoint written there. Google Drive
stays. :func:`checkpoint_folder` gives a notebook one folder for its run: on the
learner's Drive in Colab (after asking to mount it), and the usual local
``runs/NAME`` everywhere else, so the same cell works in both places.

The cell notebook 6 shows (one cell)::

    from vae_course.colab import checkpoint_folder

    # In Colab: a folder on your Google Drive (Colab asks for permission first), so a time-out costs nothing;
    # elsewhere, or if you say no: runs/06_conv_vae beside this notebook.
    RUN_DIR = checkpoint_folder("06_conv_vae")

After a time-out, run the notebook again: ``RUN_DIR`` is the same Drive folder,
and ``Trainer.resume(RUN_DIR)`` continues from its last saved epoch.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

DRIVE_MOUNT = Path("/content/drive")  # where Colab mounts Google Drive
DRIVE_RUNS = Path("MyDrive") / "vae-course" / "runs"  # the course's folder on the learner's Drive
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def in_colab() -> bool:
    """True inside a Google Colab kernel (Colab imports ``google.colab`` when the kernel starts)."""
    return "google.colab" in sys.modules


def drive_run_folder(mount_point: str | Path, name: str) -> Path:
    """The folder of run ``name`` on a Google Drive mounted at ``mount_point``:
    ``<mount_point>/MyDrive/vae-course/runs/<name>``."""
    return Path(mount_point) / DRIVE_RUNS / name


def mount_drive(mount_point: str | Path = DRIVE_MOUNT) -> str | None:
    """Mount Google Drive at ``mount_point`` (Colab asks the learner for permission, once per runtime).

    Returns ``None`` when Drive is mounted, else why not in one line (the learner
    said no, the mount failed, or this is not Colab): the caller falls back to
    the runtime's disk, so a refusal never stops the notebook.
    """
    if (Path(mount_point) / "MyDrive").is_dir():
        return None  # mounted earlier in this runtime: no second question
    try:
        from google.colab import drive

        drive.mount(str(mount_point))
    except Exception as err:  # noqa: BLE001 - declined, timed out, no Drive: every one means "use the local disk"
        return f"{type(err).__name__}: {' '.join(str(err).split()) or 'no reason given'}"
    if not (Path(mount_point) / "MyDrive").is_dir():
        return f"nothing appeared at {Path(mount_point) / 'MyDrive'} after mounting"
    return None


def checkpoint_folder(name: str, *, local_root: str | Path = "runs", use_drive: bool = True,
                      mount_point: str | Path = DRIVE_MOUNT) -> Path:
    """The folder a notebook's training run writes its checkpoints to.

    * In Colab (and ``use_drive``): mounts Google Drive (Colab asks first) and
      returns ``/content/drive/MyDrive/vae-course/runs/<name>``, created, so the
      checkpoints outlive the runtime. If the learner declines or the mount
      fails, it says so in one line and returns the local folder instead.
    * Anywhere else: ``<local_root>/<name>`` (default ``runs/<name>``, relative
      to the notebook), exactly what the notebook used before; nothing is
      created or asked (the trainer creates the folder).

    Args:
        name: the run's folder name, e.g. ``"06_conv_vae"`` (letters, digits, ``.``, ``_``, ``-``).
        local_root: the folder of local runs.
        use_drive: ``False`` keeps the checkpoints on the runtime's disk even in Colab.
        mount_point: where Drive is mounted (Colab's is ``/content/drive``).
    Returns:
        the run folder (see the module docstring for the one-cell use in notebook 6).
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"name: {name!r} is not a plain folder name; use letters, digits, '.', '_' or '-' "
                         "(for example '06_conv_vae')")
    local = Path(local_root) / name
    if not (use_drive and in_colab()):
        return local
    problem = mount_drive(mount_point)
    if problem is not None:
        print(f"Google Drive is not mounted ({problem}): checkpoints go to {local} on this runtime's disk, "
              "which a Colab time-out erases. Run this cell again to be asked again.")
        return local
    folder = drive_run_folder(mount_point, name)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Checkpoints go to your Google Drive: {folder} (a Colab time-out cannot erase them).")
    return folder
