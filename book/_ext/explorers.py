"""Explorers that run in the reader's browser, with no kernel (loaded by ``course_book``).

The notebooks' explorers are ipywidgets: they need a live Python kernel, so on
the web page they are frozen. This extension adds, on the web page only, a
JavaScript twin of each (``static/explorers.js``), drawn from data precomputed
with the shipped models by ``scripts/make_explorer_data.py`` and committed under
``static/explorers/``. The notebooks themselves are not changed: Jupyter and
Colab keep their ipywidgets.

Where an explorer goes, decided when the page's source is read:

* after the code cell that shows the notebook's own ipywidgets explorer, found by
  its code (:attr:`Explorer.after_code`: the first matching cell of the
  notebook); on the page, that cell's frozen widget is then hidden, because the
  live twin below it does the same job;
* in place of a Markdown comment ``<!-- explorer: NAME -->`` in a notebook's
  Markdown cell or a Markdown page (for places with no ipywidgets cell, and to
  move an explorer by hand: a comment wins over the code match).

An explorer is an empty ``<div class="course-explorer" hidden>`` that the
script fills and shows; without JavaScript nothing appears and the notebook's
static figures remain, as before. A comment naming an unknown explorer, or an
``after_code`` that no longer matches any cell of its notebook, is a build
warning (an error under ``-W``), so an explorer never silently disappears.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

COMMENT = re.compile(r"<!--\s*explorer:\s*([A-Za-z0-9_-]+)\s*-->")


@dataclass(frozen=True)
class Explorer:
    """One kernel-free explorer.

    ``kind``: which drawing of ``explorers.js`` ("kl", "latent", "training");
    ``data``: the data file ``static/explorers/<data>.js`` it reads ("" for none);
    ``notebook``: the notebook stem whose code cell it follows (with ``after_code``);
    ``after_code``: a regular expression searched in the code of that notebook's cells;
    ``title``, ``text``: what the reader is told (plain text; the script adds counts
    and settings read from the data file).
    """

    kind: str
    data: str
    title: str
    text: str
    notebook: str = ""
    after_code: str = ""


EXPLORERS: dict[str, Explorer] = {
    "kl": Explorer(
        kind="kl", data="", notebook="04_kl_divergence", after_code=r"\bkl_explorer\(",
        title="The KL explorer, live in your browser",
        text="Move the sliders for μ and σ: the red curve is q = N(μ, σ²), the grey one the prior "
             "p = N(0, 1), and the number is KL(q ‖ p) from the closed form of section 2, computed on this page."),
    "vae-2d": Explorer(
        kind="latent", data="vae-2d", notebook="07_latent_space", after_code=r"\blatent_explorer\(",
        title="The 2-D latent space, live in your browser",
        text="Move the pointer over the plane (on a touch screen: drag, with the keyboard: arrow keys): the panel "
             "beside it shows the digit the decoder of pretrained(\"vae-2d\") draws at that point. The dots are "
             "the codes (posterior means) of test digits, coloured by their label."),
    "ae-2d": Explorer(
        kind="latent", data="ae-2d",
        title="The autoencoder's latent space, live in your browser",
        text="Move the pointer over the plane (on a touch screen: drag, with the keyboard: arrow keys): the panel "
             "beside it shows what the decoder draws at that point. The dots are the codes of test digits. Look "
             "for the holes: points far from every dot, and what the decoder makes of them."),
    "vae-2d-training": Explorer(
        kind="training", data="vae-2d-training",
        title="The 2-D latent space during training",
        text="Drag the slider (or press play) to watch the codes of test digits move, epoch by epoch, while "
             "a 2-D VAE is trained with the recipe of pretrained(\"vae-2d\"). The circles mark one and two "
             "standard deviations of the prior N(0, I)."),
}


def explorer_html(name: str, replaces_widget: bool = False) -> str:
    """The placeholder of explorer ``name``: one line of HTML (a blank line would end a Markdown HTML block)."""
    e = EXPLORERS[name]
    attrs = (f'data-explorer="{name}" data-kind="{e.kind}" data-data="{e.data}"'
             + (' data-replaces-widget="true"' if replaces_widget else ""))
    return (f'<div class="course-explorer" {attrs} hidden>'
            f'<p class="course-explorer-title">{html.escape(e.title)}</p>'
            f'<p class="course-explorer-text">{html.escape(e.text)}</p>'
            f'<div class="course-explorer-body"></div></div>')


def _source_text(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _replace_comments(text: str, where: str) -> tuple[str, set[str]]:
    """``text`` with every ``<!-- explorer: NAME -->`` replaced by its placeholder; the names placed."""
    placed: set[str] = set()

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in EXPLORERS:
            logger.warning(f"{where}: unknown explorer {name!r} in <!-- explorer: {name} -->; "
                           f"choose one of {sorted(EXPLORERS)}", type="course", subtype="explorer")
            return m.group(0)
        placed.add(name)
        return "\n\n" + explorer_html(name) + "\n\n"  # its own block, whatever surrounds the comment

    return COMMENT.sub(sub, text), placed


def place_explorers(nb: dict[str, Any], stem: str) -> dict[str, Any]:
    """Notebook ``nb`` (named ``stem``) with its explorers' placeholders put in (see the module docstring)."""
    cells, placed = [], set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text, names = _replace_comments(_source_text(cell), f"notebooks/{stem}")
            if names:
                cell["source"], placed = text, placed | names
        cells.append(cell)
    for name, e in EXPLORERS.items():
        if e.notebook != stem or not e.after_code or name in placed:
            continue
        pattern = re.compile(e.after_code)
        index = next((i for i, c in enumerate(cells)
                      if c.get("cell_type") == "code" and pattern.search(_source_text(c))), None)
        if index is None:
            logger.warning(f"notebooks/{stem}: no code cell matches {e.after_code!r}, so the web explorer "
                           f"{name!r} has no place; put <!-- explorer: {name} --> in a Markdown cell, or update "
                           f"EXPLORERS in book/_ext/explorers.py", type="course", subtype="explorer")
            continue
        cells.insert(index + 1, {"cell_type": "markdown", "id": f"course-explorer-{name}", "metadata": {},
                                 "source": explorer_html(name, replaces_widget=True)})
    nb["cells"] = cells
    return nb


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    path = Path(str(app.env.doc2path(docname)))
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(source[0])
        except ValueError:
            return  # not JSON: let myst-nb report it
        source[0] = json.dumps(place_explorers(nb, path.stem), ensure_ascii=False)
    elif path.suffix == ".md" and "explorer:" in source[0]:
        source[0], _ = _replace_comments(source[0], docname)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _on_source_read)
    # static/ is already on html_static_path (course_book adds it); explorers/ travels with it.
    app.add_css_file("explorers.css")
    app.add_js_file("explorers.js", defer="defer")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
