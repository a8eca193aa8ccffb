"""The committed results the course's pages show, shipped with the package.

Each ``*.json`` file beside this module is the record of one measured run
(the benchmark, the long ConvVAE run, the defaults' quality study), with the
command that produced it. They install as package data, so a notebook opened
alone in Colab reads them with no repository around it::

    from vae_course.results import load_result
    long_run = load_result("conv_vae_long")     # -> dict

This folder is the only copy: tools that write a result write it here
(``RESULTS_DIR``), and every reader goes through :func:`load_result`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent


def result_names() -> list[str]:
    """The names of the committed results (file names without ``.json``), sorted."""
    return sorted(p.stem for p in RESULTS_DIR.glob("*.json"))


def result_path(name: str) -> Path:
    """The file of one result; ``ValueError`` naming the choices if there is none."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"name: no committed result {name!r}; choose one of {result_names()}")
    return path


def load_result(name: str) -> dict[str, Any]:
    """One committed result as a dict, e.g. ``load_result("conv_vae_long")``."""
    return json.loads(result_path(name).read_text(encoding="utf-8"))


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table as one string: ``header`` (n column names), ``rows`` (lists of n cells).

    Shown with ``IPython.display.Markdown`` it renders as a table in Jupyter, Colab and
    the book (the book is configured to read Markdown outputs as MyST)."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"rows: every row needs {len(header)} cells, like the header")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
