"""`scripts/nbtools.py headers` on temporary copies of the course's notebooks (the real ones are never written).

* every solution cell ends up folded (Jupyter's ``source_hidden``, Colab's form
  view) with a "Stuck?" line right before it that names the exercise;
* the command says what it did: one line per notebook changed and a summary,
  also when nothing changed; a second run changes nothing;
* a pointer that lost its solution goes, one that drifted away comes back;
* scripts/make_student.py turns each pointer into a link to the version with
  solutions of the same notebook (the Colab URL built from ``_config.yml``);
* ``execute``'s refusal on a busy machine says how to pass ``--allow-busy``
  through make, and the Makefile's ``execute`` recipe does pass ``ARGS``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_testing import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def headers(*paths: Path) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "nbtools.py"), "headers", *map(str, paths)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> list[Path]:
    """The course's notebooks copied into a folder named notebooks/ (its badges then point as the real ones)."""
    folder = tmp_path_factory.mktemp("course") / "notebooks"
    folder.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, folder / path.name)
    return sorted(folder.glob("*.ipynb"))


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def test_headers_folds_every_solution_and_points_to_it(copies: list[Path]):
    out = headers(*copies)
    lines = out.strip().splitlines()
    assert re.fullmatch(rf"headers: \d+ of {len(copies)} notebooks updated.*", lines[-1]), out
    assert all(line.startswith("updated ") and ".ipynb: " in line for line in lines[:-1]), out
    for path in copies:
        nb = nbformat.read(path, as_version=4)
        solutions = [i for i, c in enumerate(nb.cells) if "solution" in _tags(c)]
        assert solutions, path.name
        for i in solutions:
            cell, pointer = nb.cells[i], nb.cells[i - 1]
            assert cell.metadata["jupyter"]["source_hidden"] is True and cell.metadata["cellView"] == "form"
            assert "solution-pointer" in _tags(pointer) and pointer.cell_type == "markdown", (path.name, i)
            assert pointer.source.startswith("**Stuck?**") and "folded in the next cell" in pointer.source
            name = re.search(r"^def (\w+)_solution\(", cell.source, re.M).group(1)
            assert f"`{name}_solution`" in pointer.source and f"your `{name}`" in pointer.source
            assert pointer.id == f"stuck-{cell.id}"[:64]
        assert sum("solution-pointer" in _tags(c) for c in nb.cells) == len(solutions)
        nbformat.validate(nb)


def test_a_second_run_changes_nothing_and_says_so(copies: list[Path]):
    headers(*copies)
    before = [p.read_bytes() for p in copies]
    out = headers(*copies)
    assert out.strip() == f"headers: 0 of {len(copies)} notebooks updated, {len(copies)} already up to date"
    assert [p.read_bytes() for p in copies] == before


def test_pointers_follow_their_solutions(tmp_path: Path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], path)
    headers(path)
    nb = nbformat.read(path, as_version=4)
    first, second = [i for i, c in enumerate(nb.cells) if "solution" in _tags(c)][:2]
    # A pointer drifts away from its solution (a cell inserted between them) ...
    nb.cells.insert(first, nbformat.v4.new_markdown_cell("An extra remark."))
    # ... and another solution is deleted, leaving its pointer behind.
    del nb.cells[second + 1]
    nbformat.write(nb, path)
    out = headers(path)
    assert f"updated {path.name}: 2 \"Stuck?\" pointers" in out, out
    nb = nbformat.read(path, as_version=4)
    pointers = [i for i, c in enumerate(nb.cells) if "solution-pointer" in _tags(c)]
    assert pointers == [i - 1 for i, c in enumerate(nb.cells) if "solution" in _tags(c)]
    assert nb.cells[pointers[0] - 1].source == "An extra remark."


def test_the_student_version_links_the_solutions_of_the_same_notebook(copies: list[Path], tmp_path: Path):
    headers(*copies)
    dst = tmp_path / "student"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_student.py"), str(copies[0].parent), str(dst)],
                   check=True, capture_output=True, cwd=ROOT)
    url, branch = nbtools.repo_settings()
    for path in copies:
        course = nbformat.read(path, as_version=4)
        names = [re.search(r"^def (\w+)_solution\(", c.source, re.M).group(1)
                 for c in course.cells if "solution" in _tags(c)]
        student = nbformat.read(dst / path.name, as_version=4)
        pointers = [c.source for c in student.cells if "solution-pointer" in _tags(c)]
        assert len(pointers) == len(names), path.name
        colab = f"https://colab.research.google.com/github/{url.split('github.com/')[1]}/blob/{branch}/notebooks/{path.name}"
        for source, name in zip(pointers, names):
            assert source.startswith("**Stuck?**") and f"(`{name}`)" in source, source
            assert f"]({colab})" in source, source
            assert "next cell" not in source, "the student version has no solution cell below"


def test_the_busy_refusal_says_how_to_pass_the_flag_through_make(monkeypatch):
    monkeypatch.setattr(nbtools, "load_1min", lambda: nbtools.QUIET_START + 2.0)  # a busy machine
    with pytest.raises(SystemExit) as refused:
        nbtools.refuse_busy_start(allow_busy=False)
    assert "make execute ARGS=--allow-busy NB=" in str(refused.value)
    nbtools.refuse_busy_start(allow_busy=True)  # the flag lets it start
    recipe = re.search(r"(?m)^execute:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text()).group(1)
    assert "nbtools.py execute $(ARGS) $(NB)" in recipe, recipe
