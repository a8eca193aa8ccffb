"""Write the student version of the notebooks: the same chain without the solutions.

    python scripts/make_student.py notebooks student      # what `make student` runs

For every ``NN_*.ipynb`` in SRC it writes DST/NN_*.ipynb with

* every cell tagged ``solution`` removed (and, as a safety net, any cell whose
  first line is ``# @title Solution``);
* each "Stuck?" line (tag ``solution-pointer``, written by ``nbtools.py headers``
  right before a solution) rewritten to link the version with solutions of the
  same notebook (in Colab and in the book) and to name the exercise;
* everything else kept: the text, the exercise stubs (tag ``exercise``), which
  return ``None``, and the check cells after them, which then print
  "⏳ not attempted yet" instead of failing;
* all outputs and execution counts cleared, and the record of the teacher's run
  (``metadata.vae_course``, saved widget state) dropped, so the students' copy
  shows only what *they* run (no check shows ✅ before the learner writes anything);
* the test runner's ``# NBVAL_...`` marker lines removed from the code.

The student version is committed under ``student/`` (the Colab badges open it
there) and tests/book/test_student.py checks that it is what this script writes.

Run it from anywhere; it exits non-zero if SRC holds no notebook.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbtools import POINTER_TAG, exercise_name, pointer_source  # noqa: E402  (one owner for the pointer's text)

SOLUTION_TAG = "solution"
# A line that only instructs nbval (``# NBVAL_CHECK_OUTPUT``): noise to a learner.
NBVAL_MARKER = re.compile(r"^[ \t]*# ?NBVAL_[A-Z_]+[ \t]*(\n|$)", re.MULTILINE)
SOLUTION_TITLE = "# @title solution"


def is_solution(cell: nbformat.NotebookNode) -> bool:
    """True for a solution cell: tagged ``solution``, or a ``# @title Solution`` form."""
    if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
        return True
    first = cell.get("source", "").lstrip().split("\n", 1)[0].strip().lower()
    return first.startswith(SOLUTION_TITLE)


def point_to_solutions(nb: nbformat.NotebookNode, name: str) -> None:
    """Rewrite each "Stuck?" line of notebook ``name`` (``NN_x.ipynb``) for the student version, where
    the solution below it is gone: it links the version with solutions instead."""
    for i, cell in enumerate(nb.cells):
        if POINTER_TAG in cell.get("metadata", {}).get("tags", []):
            nxt = i + 1 if i + 1 < len(nb.cells) and is_solution(nb.cells[i + 1]) else None
            exercise = exercise_name(nb.cells, nxt) if nxt is not None else None
            cell.source = pointer_source(exercise, Path(name), student=True)


def student_notebook(nb: nbformat.NotebookNode, name: str = "") -> tuple[nbformat.NotebookNode, int]:
    """The student copy of notebook ``name`` (``NN_x.ipynb``), and how many solution cells it lost."""
    if name:
        point_to_solutions(nb, name)
    kept = [cell for cell in nb.cells if not is_solution(cell)]
    removed = len(nb.cells) - len(kept)
    for cell in kept:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.source = NBVAL_MARKER.sub("", cell.source)
        cell.metadata.pop("execution", None)
    nb.cells = kept
    nb.metadata.pop("vae_course", None)
    nb.metadata.pop("widgets", None)
    return nb, removed


def make_student(src: Path, dst: Path) -> list[tuple[str, int]]:
    """Write the student copies of SRC/NN_*.ipynb into DST; return (name, removed) pairs."""
    paths = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise SystemExit(f"make_student: no notebooks (NN_*.ipynb) in {src}")
    dst.mkdir(parents=True, exist_ok=True)
    report = []
    for path in paths:
        nb, removed = student_notebook(nbformat.read(path, as_version=4), path.name)
        nbformat.validate(nb)
        nbformat.write(nb, dst / path.name)
        report.append((path.name, removed))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="folder with the course notebooks (notebooks/)")
    parser.add_argument("dst", type=Path, help="folder to write the student version into (student/)")
    args = parser.parse_args(argv)
    report = make_student(args.src, args.dst)
    for name, removed in report:
        print(f"  {name}: {removed} solution cell{'s' if removed != 1 else ''} removed")
    print(f"Student version: {len(report)} notebooks in {args.dst}/ (outputs cleared). "
          "Share it as described in book/instructors.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
