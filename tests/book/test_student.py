"""The student version (`make student`): no solution survives, and it still runs.

* ``test_make_student_*`` check scripts/make_student.py on a small synthetic
  notebook (fast, always run), including the "Stuck?" line it turns into a
  link to the version with solutions;
* ``test_committed_student_*`` / ``test_badges_*``: the committed ``student/``
  is exactly what the script writes from ``notebooks/``, and every Colab badge
  opens a student notebook that exists;
* ``test_student_notebook_*`` make the student copy of every course notebook,
  check it, and run it top to bottom in a fresh kernel in smoke mode
  (``VAE_COURSE_SMOKE=1``), from the real ``notebooks/`` folder so relative
  paths behave as in the course. Every exercise check must then print
  "not attempted yet" rather than raise, and no check right after an exercise
  may show ✅ before the learner has written anything.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_student.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENT = ROOT / "student"


def make_student(src: Path, dst: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(src), str(dst)], capture_output=True, text=True,
                          check=True, cwd=ROOT)


def assert_no_solution(nb: nbformat.NotebookNode, name: str) -> None:
    for i, cell in enumerate(nb.cells):
        assert "solution" not in cell.metadata.get("tags", []), f"{name}: cell {i} is still tagged solution"
        assert "# @title solution" not in cell.source.lower(), f"{name}: cell {i} still holds a solution"


# ------------------------------------------------------------ the script itself
@pytest.fixture()
def toy_course(tmp_path: Path) -> Path:
    src = tmp_path / "notebooks"
    src.mkdir()
    nb = new_notebook(cells=[
        new_markdown_cell("# 1. Toy\n\nA question."),
        new_code_cell("def my_fn(x):\n    return None  # your code", metadata={"tags": ["exercise"]},
                      outputs=[], execution_count=1),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nfrom vae_course.checks import check_kl\ncheck_kl(my_fn)", execution_count=2,
                      outputs=[nbformat.v4.new_output("stream", name="stdout", text="⏳ not attempted yet\n")]),
        new_code_cell("# @title Solution\ndef my_fn(x):\n    return x", metadata={"tags": ["solution", "hide-input"]}),
        new_code_cell("# @title Solution (untagged, caught by its title)\nanswer = 42"),
        new_markdown_cell("## What to remember"),
    ])
    nb.metadata["vae_course"] = {"seconds": 1.0}
    nbformat.write(nb, src / "01_toy.ipynb")
    (src / "notes.ipynb").write_text("not a course notebook, not copied")
    return src


def test_make_student_removes_solutions_and_keeps_the_rest(toy_course: Path, tmp_path: Path):
    dst = tmp_path / "student"
    out = make_student(toy_course, dst)
    assert "01_toy.ipynb: 2 solution cells removed" in out.stdout
    assert sorted(p.name for p in dst.iterdir()) == ["01_toy.ipynb"]
    nb = nbformat.read(dst / "01_toy.ipynb", as_version=4)
    assert_no_solution(nb, "01_toy")
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "markdown"]
    assert "exercise" in nb.cells[1].metadata["tags"], "the exercise stub must stay"
    assert "check_kl(my_fn)" in nb.cells[2].source, "the check must stay"
    assert "NBVAL" not in nb.cells[2].source, "nbval's markers must not leak into the student version"
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert "vae_course" not in nb.metadata


def test_make_student_turns_each_stuck_line_into_a_link_to_the_solutions(tmp_path: Path):
    """The "Stuck?" line (tag solution-pointer, by nbtools.py headers) points to the version with solutions."""
    src = tmp_path / "notebooks"
    src.mkdir()
    nb = new_notebook(cells=[
        new_code_cell("def my_fn(x):\n    return None", metadata={"tags": ["exercise"]}),
        new_code_cell("check_kl(my_fn)"),
        new_markdown_cell("**Stuck?** The solution is folded in the next cell.", metadata={"tags": ["solution-pointer"]}),
        new_code_cell("# @title Solution\ndef my_fn_solution(x):\n    return x\ncheck_kl(my_fn_solution)",
                      metadata={"tags": ["solution", "hide-input"]}),
    ])
    nbformat.write(nb, src / "07_toy.ipynb")
    make_student(src, tmp_path / "student")
    cells = nbformat.read(tmp_path / "student" / "07_toy.ipynb", as_version=4).cells
    assert len(cells) == 3 and "solution-pointer" in cells[2].metadata["tags"]
    sys.path.insert(0, str(ROOT / "scripts"))
    import nbtools

    assert f"]({nbtools.colab_url(ROOT / 'notebooks' / '07_toy.ipynb')})" in cells[2].source, cells[2].source
    assert "(`my_fn`)" in cells[2].source and "next cell" not in cells[2].source


def test_make_student_fails_without_notebooks(tmp_path: Path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "no notebooks" in result.stderr


def test_committed_student_version_is_in_sync(tmp_path: Path):
    """student/ (committed: the Colab badges open it) is what `make student` writes today."""
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")
    make_student(ROOT / "notebooks", tmp_path)
    fresh = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    committed = sorted(p.name for p in STUDENT.glob("*.ipynb"))
    assert committed == fresh, f"student/ holds {committed}, the course {fresh}: run `make student` and commit"
    stale = [name for name in fresh if nbformat.read(tmp_path / name, as_version=4)
             != nbformat.read(STUDENT / name, as_version=4)]
    assert not stale, f"student/ is out of date for {stale}: run `make student` and commit student/"


def test_committed_student_version_has_no_solution_no_output_no_marker():
    for path in sorted(STUDENT.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert_no_solution(nb, path.name)
        for i, cell in enumerate(nb.cells):
            assert "NBVAL_" not in cell.source, f"{path.name} cell {i}: an nbval marker leaked"
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {i} has outputs"
        assert "vae_course" not in nb.metadata and "widgets" not in nb.metadata


@pytest.mark.parametrize("source", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip("no notebooks yet"))],
                         ids=lambda p: p.stem if p else "none")
def test_badges_open_a_student_notebook_that_exists(source: Path):
    import re

    sys.path.insert(0, str(ROOT / "scripts"))
    import nbtools

    badge = nbtools.badge_source(source)
    url, branch = nbtools.repo_settings()
    target = re.search(r"\(https://colab\.research\.google\.com/github/[^)]*?/blob/" + re.escape(branch)
                       + r"/([^)]+)\)", badge).group(1)
    assert target == f"student/{source.name}", f"{source.name}: the badge opens {target}, not the student version"
    assert (ROOT / target).is_file(), f"{source.name}: the badge opens {target}, which is not committed"
    assert f"notebooks/{source.name}" in badge, "the version with solutions stays linked"


# ------------------------------------------------------- the course's notebooks
@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    if not NOTEBOOKS:
        pytest.skip("no notebooks in notebooks/ yet")
    dst = tmp_path_factory.mktemp("student")
    make_student(ROOT / "notebooks", dst)
    return dst


@pytest.mark.parametrize("source", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip("no notebooks yet"))],
                         ids=lambda p: p.stem if p else "none")
def test_student_notebook_has_no_solution_and_runs(student_dir: Path, source: Path, monkeypatch):
    from nbclient import NotebookClient

    original = nbformat.read(source, as_version=4)
    student = nbformat.read(student_dir / source.name, as_version=4)
    assert_no_solution(student, source.name)
    n_exercises = sum("exercise" in c.metadata.get("tags", []) for c in student.cells)
    assert n_exercises == sum("exercise" in c.metadata.get("tags", []) for c in original.cells), \
        "exercise stubs must all be kept"
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "outputs must be cleared"

    # Run it as a student would, in smoke mode, from the course's notebooks/ folder.
    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    NotebookClient(student, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    text = "\n".join(out.get("text", "") if out.get("output_type") == "stream"
                     else str(out.get("data", {}).get("text/plain", ""))
                     for c in student.cells if c.cell_type == "code" for out in c.outputs)
    errors = [out for c in student.cells if c.cell_type == "code" for out in c.outputs
              if out.get("output_type") == "error"]
    assert not errors, f"{source.name}: the student version raised: {errors[0].get('ename')}"
    after_exercise = [next((c for c in student.cells[i + 1:] if c.cell_type == "code"), None)
                      for i, c in enumerate(student.cells) if "exercise" in c.metadata.get("tags", [])]
    shown = [c.source.splitlines()[0] for c in after_exercise if c is not None
             and any("✅" in (out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
                     for out in c.outputs)]
    assert not shown, f"{source.name}: a check shows ✅ before the learner wrote anything: {shown}"
    if n_exercises:
        assert "not attempted yet" in text, (
            f"{source.name}: has {n_exercises} exercises, but no check printed 'not attempted yet'")


def names_from_solutions(nb: nbformat.NotebookNode) -> list[tuple[int, str, int]]:
    """(cell, name, solution cell) for each later cell that uses a name a solution defined.

    Exercise stubs and check calls (``check_x(name)``) may use them: in the
    student version the stub defines the name and the check says "not attempted".
    Anything else would fail (or silently use the stub's ``None``) without the solution.
    """
    import ast

    defined: dict[str, int] = {}
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        if "solution" in tags:
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    defined[node.name] = i
                elif isinstance(node, ast.Assign):
                    defined.update({t.id: i for t in node.targets if isinstance(t, ast.Name)})
            continue
        if "exercise" in tags:
            continue
        checked = {arg.id for node in ast.walk(tree) if isinstance(node, ast.Call)
                   and isinstance(node.func, (ast.Name, ast.Attribute))
                   and getattr(node.func, "id", getattr(node.func, "attr", "")).startswith("check")
                   for arg in node.args if isinstance(arg, ast.Name)}
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - checked
        found += [(i, name, defined[name]) for name in sorted(used) if name in defined]
    return found


def test_names_from_solutions_finds_a_dependency():
    nb = new_notebook(cells=[
        new_code_cell("def f(x):\n    return None", metadata={"tags": ["exercise"]}),
        new_code_cell("check_kl(f)"),
        new_code_cell("# @title Solution\ndef f(x):\n    return x\ncheck_kl(f)", metadata={"tags": ["solution"]}),
        new_code_cell("y = f(3)"),
    ])
    assert names_from_solutions(nb) == [(3, "f", 2)]


@pytest.mark.parametrize("source", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip("no notebooks yet"))],
                         ids=lambda p: p.stem if p else "none")
def test_no_cell_needs_a_solution(source: Path):
    """Fast, static: a later cell must not use what only a solution defines (use the package's version)."""
    problems = names_from_solutions(nbformat.read(source, as_version=4))
    assert not problems, (f"{source.name}: in the student version (no solutions) these cells would use the "
                          "learner's unfinished stub; use the package's function there instead: "
                          + "; ".join(f"cell {i} uses {name!r} defined by solution cell {j}" for i, name, j in problems))
