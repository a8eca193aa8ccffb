"""Unit tests of the book's Sphinx extension (book/_ext/course_book.py); no build needed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import course_book  # noqa: E402

PNG = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}


def toy() -> dict:
    nb = new_notebook(cells=[
        new_markdown_cell("[![Open In Colab](badge.svg)](link)", metadata={"tags": ["colab-badge"]}),
        new_code_cell("%pip install x", metadata={"tags": ["colab-setup"]}),
        new_markdown_cell("# 3. A title\n\n**Time:** about 40 minutes (no training)."),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"),
        new_markdown_cell("## Reconstructions"),
        new_code_cell("# Ten digits and their reconstructions\nplot()", outputs=[new_output("display_data", data=PNG)]),
        new_code_cell("plot()", outputs=[new_output("display_data", data=PNG)]),
        new_code_cell("plot()", outputs=[new_output("display_data", data=PNG)],
                      metadata={"mystnb": {"image": {"alt": "Chosen by the author"}}}),
        new_code_cell("# @title Solution\nx = 1", metadata={"tags": ["solution", "hide-input"]}),
    ])
    return json.loads(nbformat.writes(nb))


def test_web_notebook_hides_colab_cells_and_markers():
    cells = course_book.web_notebook(toy())["cells"]
    assert "".join(cells[0]["source"]).startswith("# 3. A title"), "the page must start with its title"
    assert not any("colab" in " ".join(c["metadata"].get("tags", [])) for c in cells)
    assert cells[1]["source"] == "print(1)", "NBVAL markers are for the test runner, not the reader"


def test_web_notebook_gives_every_figure_alt_text():
    cells = course_book.web_notebook(toy())["cells"]
    alts = [c["metadata"]["mystnb"]["image"]["alt"] for c in cells if c["cell_type"] == "code" and c.get("outputs")]
    assert alts == ["Figure: Ten digits and their reconstructions",
                    "Figure from the section “Reconstructions”",
                    "Chosen by the author"]


def test_web_notebook_folds_solutions_behind_a_clear_label():
    solution = course_book.web_notebook(toy())["cells"][-1]
    assert solution["metadata"]["mystnb"]["code_prompt_show"] == "Show the solution"


def test_notebook_summary_reads_title_time_and_run(tmp_path: Path):
    nb = toy()
    nb["metadata"]["vae_course"] = {"seconds": 125.0, "device": "cuda: Tesla T4", "executed": "2026-01-02"}
    path = tmp_path / "03_x.ipynb"
    path.write_text(json.dumps(nb))
    s = course_book.notebook_summary(path)
    assert (s["title"], s["study"], s["seconds"], s["device"]) == ("3. A title", "about 40 minutes", 125.0,
                                                                   "cuda: Tesla T4")
    assert course_book._human(125.0) == "2 min" and course_book._human(None) == "not recorded yet"


def test_run_description_shows_the_machine_and_its_load(tmp_path: Path):
    nb = toy()
    nb["metadata"]["vae_course"] = {"seconds": 45.0, "device": "cpu: 2 cores, 2 torch threads",
                                    "executed": "2026-11-26", "cpu_model": "AMD EPYC", "load_before": [0.05, 0.1, 0.2],
                                    "load_max": 2.1, "quiet": True}
    path = tmp_path / "05_x.ipynb"
    path.write_text(json.dumps(nb))
    text = course_book.run_description(course_book.notebook_summary(path))
    assert text == "45 s on CPU (2 cores, AMD EPYC), load average 0.05 before, 2.10 at most, 2026-11-26"


def test_run_description_says_when_the_load_was_not_recorded(tmp_path: Path):
    nb = toy()
    nb["metadata"]["vae_course"] = {"seconds": 3291.3, "device": "cpu: 2 cores, 2 torch threads",
                                    "executed": "2026-11-25"}
    path = tmp_path / "05_x.ipynb"
    path.write_text(json.dumps(nb))
    assert "machine load not recorded" in course_book.run_description(course_book.notebook_summary(path))


def test_the_book_fills_its_substitutions_from_the_results():
    values = course_book.prose_numbers_module(ROOT).book_substitutions()
    assert values["conv_nll"] and all(isinstance(v, str) for v in values.values())
