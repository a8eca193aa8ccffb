"""`make lab`: the learner's own copies first, the solutions one folder away.

    python scripts/lab.py [JUPYTER OPTIONS]       # what `make lab` runs: prepare lab/, then open JupyterLab
    python scripts/lab.py --prepare-only          # only prepare lab/ (print what changed)
    python scripts/lab.py --root DIR ...          # another folder than lab/ (the tests use one)

It prepares a git-ignored folder ``lab/``:

* ``lab/exercises/``: the learner's copies of the student version (``student/``:
  the exercises without their solutions). A copy is written only where none
  exists yet, or where the learner never changed the one written before (its
  SHA-256 is recorded in ``lab/.copies.json``): a notebook the learner edited is
  never overwritten;
* ``lab/solutions/``: the version with solutions (``notebooks/``, with the
  course's own outputs), refreshed every time and made read-only, so nobody
  types an attempt into it by mistake;
* ``lab/README.md``: which is which, and how to get a fresh copy.

Then it runs JupyterLab with ``lab/`` as its root, opened on ``exercises/``.
The notebooks run from there as from ``notebooks/``: the package is installed
in the environment, the data come from ``VAE_COURSE_DATA`` (or the download
cache), and the only relative path they use, ``runs/``, is created beside them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"
EXERCISES, SOLUTIONS = "exercises", "solutions"
COPIES = ".copies.json"  # hidden from Jupyter's file browser (a dotfile)
PATTERN = "[0-9][0-9]_*.ipynb"
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH

README = """\
# Your course notebooks

| folder | what it holds |
|---|---|
| `exercises/` | **Your copies**: the notebooks with the exercises, *without* their solutions. Work here. |
| `solutions/` | The same notebooks **with the solutions** (folded under each exercise) and the outputs of the course's own run. Read-only. |

* `make lab` never overwrites a notebook of `exercises/` that you have changed. A copy you have not
  touched is brought up to date when the course changes.
* A fresh copy of one exercise notebook: rename yours (for example to `03_reparameterization-mine.ipynb`)
  or delete it, then run `make lab` again.
* `solutions/` is rewritten from the course's `notebooks/` each time `make lab` starts. To experiment
  in a solution notebook, use *File → Save Notebook As…* and save it into `exercises/`.
* Each exercise ends with a "Stuck?" line that says where its solution is.
* This folder is not part of the repository (git ignores it); notebooks that save checkpoints put them
  in `runs/` beside themselves.
"""


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(dst: Path, data: bytes, read_only: bool = False) -> None:
    if dst.exists() and not os.access(dst, os.W_OK):
        dst.chmod(dst.stat().st_mode | stat.S_IWUSR)  # our own read-only copy: unlock to refresh it
    dst.write_bytes(data)
    if read_only:
        dst.chmod(READ_ONLY)


def prepare_exercises(student: Path, folder: Path, record: dict[str, str]) -> list[str]:
    """Copy ``student/NN_*.ipynb`` into ``folder`` where it is safe; return one line per change.

    Safe means: no file there yet, or the file there is byte for byte the copy
    written last time (``record``: ``"exercises/NAME"`` -> SHA-256; updated here).
    """
    folder.mkdir(parents=True, exist_ok=True)
    changes = []
    for src in sorted(student.glob(PATTERN)):
        dst, key = folder / src.name, f"{EXERCISES}/{src.name}"
        data = src.read_bytes()
        new, written = hashlib.sha256(data).hexdigest(), record.get(key)
        if not dst.exists():
            changes.append(f"exercises/{src.name}: copied")
        elif sha256(dst) == new:
            record[key] = new
            continue
        elif sha256(dst) == written:
            changes.append(f"exercises/{src.name}: untouched copy updated to the course's new version")
        else:  # the learner's work: never overwritten
            if new != written:
                changes.append(f"exercises/{src.name}: kept (you changed it); the course has a newer copy: "
                               "rename yours and run `make lab` again to get it")
            continue
        _write(dst, data)
        record[key] = new
    return changes


def _rescue(path: Path, exercises: Path) -> str:
    """Move a solution notebook someone edited into ``exercises/`` under a new name; say where."""
    target = exercises / f"{path.stem} (edited in solutions).ipynb"
    n = 2
    while target.exists():
        target, n = exercises / f"{path.stem} (edited in solutions {n}).ipynb", n + 1
    exercises.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    path.unlink()
    return f"solutions/{path.name}: you had changed it; your version is now exercises/{target.name}"


def prepare_solutions(notebooks: Path, folder: Path, exercises: Path, record: dict[str, str]) -> list[str]:
    """Mirror ``notebooks/NN_*.ipynb`` into ``folder``, read-only; return one line per change.

    Read-only stops a learner, but not ``root`` (a container): a solution notebook
    that differs from the copy written last time was edited, and moves to
    ``exercises`` before the refresh, so no attempt is lost either way.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in sorted(notebooks.glob(PATTERN))}
    changes = []
    for present in sorted(folder.glob(PATTERN)):
        written = record.get(f"{SOLUTIONS}/{present.name}")
        if written is not None and sha256(present) != written:
            changes.append(_rescue(present, exercises))
        elif present.name not in wanted:  # a notebook the course no longer has (this folder is ours)
            present.chmod(present.stat().st_mode | stat.S_IWUSR)
            present.unlink()
            changes.append(f"solutions/{present.name}: removed")
    for name, src in wanted.items():
        dst = folder / name
        data = src.read_bytes()
        record[f"{SOLUTIONS}/{name}"] = hashlib.sha256(data).hexdigest()
        if dst.exists() and dst.read_bytes() == data:
            dst.chmod(READ_ONLY)
            continue
        changes.append(f"solutions/{name}: {'updated' if dst.exists() else 'copied'}")
        _write(dst, data, read_only=True)
    return changes


def prepare(root: Path = LAB, student: Path = ROOT / "student", notebooks: Path = ROOT / "notebooks") -> list[str]:
    """Prepare the lab folder (see the module docstring); return what changed, one line each."""
    if not any(student.glob(PATTERN)):
        raise SystemExit(f"lab: no student notebooks in {student}: run `make student` first")
    root.mkdir(parents=True, exist_ok=True)
    record_path = root / COPIES
    record: dict[str, str] = json.loads(record_path.read_text()) if record_path.is_file() else {}
    changes = prepare_exercises(student, root / EXERCISES, record)
    changes += prepare_solutions(notebooks, root / SOLUTIONS, root / EXERCISES, record)
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    readme = root / "README.md"
    if not readme.is_file() or readme.read_text() != README:
        _write(readme, README.encode())
    return changes


def jupyter_command(root: Path, extra: list[str]) -> list[str]:
    """The JupyterLab command line: root ``root``, opened on its ``exercises/`` folder."""
    return [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}",
            f"--LabApp.default_url=/lab/tree/{EXERCISES}", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=LAB, help="the folder to prepare and open (default: lab/)")
    parser.add_argument("--prepare-only", action="store_true", help="prepare the folder, do not start JupyterLab")
    args, jupyter_args = parser.parse_known_args(argv)
    root = args.root.resolve()
    changes = prepare(root)
    for line in changes:
        print(f"  {line}")
    print(f"lab: your copies are in {root / EXERCISES}/, the solutions (read-only) in {root / SOLUTIONS}/"
          f"{'' if changes else ' (nothing changed)'}", flush=True)
    if args.prepare_only:
        return 0
    command = jupyter_command(root, jupyter_args)
    os.execv(command[0], command)  # JupyterLab takes this process over (Ctrl-C stops it as usual)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
