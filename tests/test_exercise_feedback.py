"""Exercises with feedback everywhere (issue 13, item 5).

* an open ("explore") exercise has no check, so it must fold the expected observation in a
  ``<details>`` block, in its own markdown cell or a later one before the next section;
* no exercise is announced as having "no check";
* every notebook has at least one exercise whose solution is more than a one-line formula
  (a function of two statements or more).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
OPEN_EXERCISE = re.compile(r"(?i)exercise[^\n]*\((?:explore|open)\b|explore it yourself")


def open_exercises_without_feedback(cells) -> list[int]:
    """Indices of markdown cells that open an exercise with no folded expected observation."""
    markdown = [(i, c.source) for i, c in enumerate(cells) if c.cell_type == "markdown"]
    missing = []
    for pos, (i, text) in enumerate(markdown):
        if not OPEN_EXERCISE.search(text):
            continue
        window = [text] + [t for _, t in markdown[pos + 1:]]
        found = False
        for k, t in enumerate(window):
            if k > 0 and re.match(r"\s*##? ", t):  # the next section starts: stop looking
                break
            if "<details>" in t and "</details>" in t:
                found = True
                break
        if not found:
            missing.append(i)
    return missing


def longest_solution_function(cells) -> int:
    """The most statements in the body of a function defined by a solution cell."""
    best = 0
    for cell in cells:
        if cell.cell_type != "code" or "solution" not in cell.metadata.get("tags", []):
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                best = max(best, len(body))
    return best


def _md(text):
    return nbformat.v4.new_markdown_cell(text)


def test_the_rules_catch_a_bare_open_exercise_and_accept_a_folded_one():
    bare = [_md("**Exercise 3 (explore).** Move the sliders."), _md("## What to remember")]
    folded = [_md("**Exercise 3 (explore).** Move the sliders.\n\n<details>\n<summary>What you should see</summary>\n\n"
                  "It moves.\n\n</details>"), _md("## What to remember")]
    later = [_md("### Explore it yourself"), _md("<details><summary>x</summary>\n\ny\n\n</details>")]
    too_late = [_md("### Explore it yourself"), _md("## 6. Next section"), _md("<details>y</details>")]
    assert open_exercises_without_feedback(bare) == [0]
    assert open_exercises_without_feedback(folded) == []
    assert open_exercises_without_feedback(later) == []
    assert open_exercises_without_feedback(too_late) == [0]
    one_liner = nbformat.v4.new_code_cell("# @title Solution\ndef f(x):\n    return x + 1")
    one_liner.metadata["tags"] = ["solution", "hide-input"]
    assert longest_solution_function([one_liner]) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_open_exercises_fold_the_expected_observation(path):
    cells = nbformat.read(path, as_version=4).cells
    missing = open_exercises_without_feedback(cells)
    assert not missing, f"{path.name}: open exercises in cells {missing} need a <details> block with what to expect"
    silent = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "no check" in c.source.lower()]
    assert not silent, f"{path.name}: cells {silent} announce an exercise with no check; give it a check or a <details>"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_some_exercise_asks_for_more_than_one_line(path):
    cells = nbformat.read(path, as_version=4).cells
    assert longest_solution_function(cells) >= 2, \
        f"{path.name}: every solution is a one-line function; add an exercise that asks for more code"
