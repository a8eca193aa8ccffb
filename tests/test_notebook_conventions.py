"""Every notebook follows book/contributing.md: generated header cells, fresh
outputs made in full mode, numeric checks, exercises with hidden solutions,
objectives at the top and "What to remember" at the end."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402

import nbformat  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 3 * 1024 * 1024

if not NOTEBOOKS:
    pytest.skip("no notebooks yet", allow_module_level=True)


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def nb(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def _rerun(path: Path) -> str:
    return f"re-execute it: make execute NB=notebooks/{path.name}"


def test_header_cells_are_the_generated_badge_and_setup(nb):
    path, book = nb
    badge, setup = book.cells[0], book.cells[1]
    assert badge.cell_type == "markdown" and "colab-badge" in _tags(badge), f"{path.name}: run scripts/nbtools.py headers"
    assert badge.source == nbtools.badge_source(path), f"{path.name}: stale badge; run scripts/nbtools.py headers"
    assert setup.cell_type == "code" and "colab-setup" in _tags(setup)
    assert setup.source == nbtools.setup_source(), f"{path.name}: stale setup cell; run scripts/nbtools.py headers"
    assert "Open In Colab" in badge.source and f"notebooks/{path.name}" in badge.source


def test_outputs_are_fresh_and_made_in_full_mode(nb):
    path, book = nb
    meta = book.metadata.get("vae_course", {})
    assert meta, f"{path.name} has no execution record; {_rerun(path)}"
    assert meta.get("code_hash") == nbtools.code_hash(book), f"{path.name}: code changed since its outputs were made; {_rerun(path)}"
    assert meta.get("mode") == "full", f"{path.name} was executed in smoke mode; {_rerun(path)}"


CPU_SECONDS_MAX = 180  # a full-mode page runs in at most 3 minutes on a quiet CPU


def test_execution_record_says_a_quiet_machine_made_the_outputs(nb):
    path, book = nb
    meta = book.metadata.get("vae_course", {})
    missing = [f for f in nbtools.RECORD_FIELDS if f not in meta]
    assert not missing, f"{path.name}: execution record lacks {missing}; {_rerun(path)}"
    assert meta["quiet"] is True, f"{path.name}: executed on a busy machine (--allow-busy); {_rerun(path)}"
    assert meta["load_before"][0] <= nbtools.QUIET_START, (
        f"{path.name}: load average {meta['load_before'][0]} before the run (> {nbtools.QUIET_START}); {_rerun(path)}")
    assert meta["load_max"] <= nbtools.busy_limit(meta["threads"]), (
        f"{path.name}: load average reached {meta['load_max']} during the run "
        f"(> {nbtools.busy_limit(meta['threads'])}); {_rerun(path)}")
    if meta["device"].startswith("cpu"):
        assert meta["seconds"] <= CPU_SECONDS_MAX, (
            f"{path.name}: {meta['seconds']} s in full mode on a CPU (limit {CPU_SECONDS_MAX} s): make it lighter")


def test_executed_in_order_without_errors(nb):
    path, book = nb
    counts = [c.get("execution_count") for c in book.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}; {_rerun(path)}"
    for i, cell in enumerate(book.cells):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{path.name} cell {i}: {out.get('ename')}: {out.get('evalue')}"


def test_small_enough(nb):
    path, _ = nb
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB (limit 3 MB)"


def test_numeric_checks_and_exercises(nb):
    path, book = nb
    code = [c for c in book.cells if c.cell_type == "code"]
    checked = [c for c in code if c.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")]
    assert len(checked) >= 3, f"{path.name}: {len(checked)} '# NBVAL_CHECK_OUTPUT' cells, at least 3 needed"
    exercises = [c for c in book.cells if "exercise" in _tags(c)]
    solutions = [c for c in book.cells if "solution" in _tags(c)]
    assert len(exercises) >= 2, f"{path.name}: {len(exercises)} cells tagged 'exercise', at least 2 needed"
    assert len(solutions) >= 2, f"{path.name}: {len(solutions)} cells tagged 'solution', at least 2 needed"
    for cell in solutions:
        assert cell.cell_type == "code" and cell.source.lstrip().startswith("# @title Solution"), \
            f"{path.name}: a solution cell must start with '# @title Solution':\n{cell.source[:80]}"
        assert "hide-input" in _tags(cell), f"{path.name}: solution cells need the tag 'hide-input'"


def test_every_solution_is_folded_and_announced_by_a_stuck_line(nb):
    """Each solution cell is folded in Jupyter and Colab and has the generated "Stuck?" line right before it."""
    path, book = nb
    fix = f"{path.name}: run `.venv/bin/python scripts/nbtools.py headers && make student`"
    for i, cell in enumerate(book.cells):
        if "solution" in _tags(cell):
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{fix} (cell {i} is not folded)"
            assert cell.metadata.get("cellView") == "form", f"{fix} (cell {i} is not a Colab form)"
            pointer = book.cells[i - 1]
            assert "solution-pointer" in _tags(pointer), f"{fix} (no \"Stuck?\" line before cell {i})"
            assert pointer.source == nbtools.pointer_source(nbtools.exercise_name(book.cells, i), path), \
                f"{fix} (stale \"Stuck?\" line before cell {i})"
        elif "solution-pointer" in _tags(cell):
            assert i + 1 < len(book.cells) and "solution" in _tags(book.cells[i + 1]), \
                f"{fix} (cell {i}: a \"Stuck?\" line without its solution)"


def test_objectives_first_and_what_to_remember_last(nb):
    path, book = nb
    title = book.cells[2]
    assert title.cell_type == "markdown" and title.source.lstrip().startswith("# "), f"{path.name}: cell 2 is the title"
    assert "objective" in title.source.lower() or "you will learn" in title.source.lower(), \
        f"{path.name}: the title cell should list the learning objectives"
    last_md = [c for c in book.cells if c.cell_type == "markdown"][-1]
    assert "what to remember" in last_md.source.lower(), f"{path.name}: end with a 'What to remember' section"


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return found


def test_every_toc_notebook_exists_and_every_notebook_is_listed():
    entries = [f for f in _toc_files() if f.startswith("notebooks/")]
    for entry in entries:
        assert (ROOT / f"{entry}.ipynb").is_file() or (ROOT / entry).is_file(), f"_toc.yml lists missing {entry}"
    listed = {Path(e).stem for e in entries}
    if len(entries) >= len(NOTEBOOKS):  # the book engineer may still be adding entries
        missing = [p.name for p in NOTEBOOKS if p.stem not in listed]
        assert not missing, f"not in _toc.yml: {missing}"


def test_times_table_lists_every_notebook_record():
    table = nbtools.times_table(NOTEBOOKS)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["notebook", "seconds"]
    assert [line.split()[0] for line in lines[1:]] == [p.name for p in NOTEBOOKS]


def test_load_sampler_keeps_the_highest_load_and_stops():
    with nbtools.LoadSampler(every=0.01) as sampler:
        pass
    assert sampler.peak >= 0 and not sampler._thread.is_alive()
    assert nbtools.busy_limit(2) == 2 + nbtools.BUSY_MARGIN
