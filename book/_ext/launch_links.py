"""The book's launch buttons open the learner's copy: ``student/NN.ipynb``, not ``notebooks/NN.ipynb``.

sphinx-book-theme builds each notebook page's launch buttons (the rocket: Colab,
and Binder or JupyterHub if configured) from the page's own path, so on the page
``notebooks/05_full_vae`` they would open ``notebooks/05_full_vae.ipynb``, the
version *with* solutions, where "Run all" shows every answer. This extension
runs after the theme (``html-page-context``, priority 510 > the theme's 501)
and points every launch link of a course notebook at ``student/NN.ipynb``,
the same notebook without its solutions (written by ``make student``; the page
itself keeps showing the solutions, folded).

A page under ``notebooks/`` whose student copy is missing is a warning (the
strict build fails): run ``make student``. Other pages (``book/results``) keep
their own links. Loaded by ``course_book.setup``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
COURSE_PAGE = re.compile(r"notebooks/(?P<name>\d\d_[\w-]+)")
LAUNCH_GROUP = "launch-buttons"  # sphinx-book-theme's label for the rocket's dropdown


def student_target(pagename: str, srcdir: str | Path) -> tuple[str, str] | None:
    """``("notebooks/NN.ipynb", "student/NN.ipynb")`` for a course notebook page, else ``None``."""
    m = COURSE_PAGE.fullmatch(pagename)
    if not m or not (Path(srcdir) / f"{pagename}.ipynb").is_file():
        return None
    return f"{pagename}.ipynb", f"student/{m.group('name')}.ipynb"


def retarget(buttons: list[dict[str, Any]], source: str, student: str) -> int:
    """Point every launch link in ``buttons`` (the theme's header buttons) from ``source`` to
    ``student``; returns how many links were changed."""
    changed = 0
    for group in buttons:
        if group.get("label") != LAUNCH_GROUP:
            continue
        for button in group.get("buttons", []):
            url = button.get("url")
            if url and source in url:
                button["url"] = url.replace(source, student)
                button["tooltip"] = f"{button.get('tooltip', 'Launch')}: the exercises, without their solutions"
                changed += 1
    return changed


def _on_page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    target = student_target(pagename, app.srcdir)
    if target is None or "header_buttons" not in context:
        return
    source, student = target
    if not (Path(app.srcdir) / student).is_file():
        LOGGER.warning(f"launch_links: {pagename}'s launch buttons should open {student}, which does not exist; "
                       "run `make student`", location=pagename)
        return
    retarget(context["header_buttons"], source, student)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _on_page_context, priority=510)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
