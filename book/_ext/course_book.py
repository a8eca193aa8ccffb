"""The course's small Sphinx extension (loaded through ``_config.yml``).

It changes how the committed notebooks *look on the web*, never what they
compute, and it keeps the instructor's guide in step with the notebooks:

* the two generated header cells (the "Open in Colab" badge and the
  Colab-only ``%pip install`` cell, tags ``colab-badge`` / ``colab-setup``) are
  left out of the web page, whose "Colab" launch button does their job, so each
  page starts with its title;
* ``# NBVAL_...`` marker lines (instructions to the test runner) are left out of
  the code shown on the web;
* solution cells (tag ``solution``) fold behind "Show the solution";
* every output figure gets alt text (an author's ``metadata.mystnb.image.alt``
  wins; otherwise the code cell's first comment, else the section it is in);
* the ``{nb}`` role links a page of the course that may not exist yet:
  ``{nb}`notebook 5 <05_full_vae>``` (or ``{nb}`the results <book/results>```)
  is a link once ``notebooks/05_full_vae.ipynb`` is in the table of contents,
  and plain text before that, so prose pages never break the strict build
  while notebooks are being written;
* two fixes for the Jupyter Book 1 theme stack, each a console error in every
  page otherwise: sphinx-thebe's configuration script is registered twice
  (``const THEBE_JS_URL`` declared twice: a SyntaxError), so page scripts are
  de-duplicated; and the theme's colour mode is empty unless set ("Got invalid
  theme mode"), so it defaults to light (readers can still switch); and the
  newer pydata theme's duplicate top search bar is turned off; ``static/course.css``
  fits ~100-character code lines and lets wide equations scroll, and
  ``static/course.js`` shrinks the widest equations a little to fit;
* the ``{course-notebooks}`` directive renders a table of the notebooks with the
  estimated study time from each title cell and the full-mode run that
  ``scripts/nbtools.py execute`` recorded in ``metadata.vae_course`` (seconds,
  device, and the machine's load average before and during the run);
* measured numbers in the prose pages are MyST substitutions, ``{{ conv_nll }}``,
  filled at build time from the committed results by ``scripts/prose_numbers.py``
  (its ``BOOK_NUMBERS``), so a page never quotes a number by hand.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HEADER_TAGS = {"colab-badge", "colab-setup"}
NBVAL_LINE = re.compile(r"^\s*#\s*NBVAL_\w+\s*$")
TIME_LINE = re.compile(r"(?im)^[\s>*_-]*(?:estimated\s+)?(?:study\s+)?time[^:\n]*:\**\s*(.+?)\s*$")


def _source_text(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _first_comment(code: str) -> str | None:
    """The first explanatory comment of a code cell (not a marker or a form title)."""
    for line in code.splitlines():
        s = line.strip()
        if not s.startswith("#"):
            if s:
                return None  # only comments *before* the code describe the whole cell
            continue
        text = s.lstrip("#").strip()
        if not text or text.startswith(("NBVAL_", "@title", "!", "%")):
            continue
        return text
    return None


def web_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook as the web page shows it (see the module docstring)."""
    cells, heading = [], None
    for cell in nb.get("cells", []):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & HEADER_TAGS:
            continue
        if cell.get("cell_type") == "markdown":
            for line in _source_text(cell).splitlines():
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()
        if cell.get("cell_type") == "code":
            code = _source_text(cell)
            cell["source"] = "\n".join(l for l in code.splitlines() if not NBVAL_LINE.match(l))
            meta = cell.setdefault("metadata", {})
            mystnb = meta.setdefault("mystnb", {})
            if "solution" in tags:
                mystnb.setdefault("code_prompt_show", "Show the solution")
                mystnb.setdefault("code_prompt_hide", "Hide the solution")
            has_image = any(any(k.startswith("image/") for k in out.get("data", {}))
                            for out in cell.get("outputs", []))
            if has_image:
                image = mystnb.setdefault("image", {})
                if "alt" not in image:
                    what = _first_comment(code)
                    image["alt"] = (f"Figure: {what}" if what
                                    else f"Figure from the section “{heading}”" if heading
                                    else "Figure made by the code cell above")
        cells.append(cell)
    nb["cells"] = cells
    return nb


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    try:
        nb = json.loads(source[0])
    except ValueError:
        return  # not JSON: let myst-nb report it
    source[0] = json.dumps(web_notebook(nb), ensure_ascii=False)


# --------------------------------------------------------------- the time table
def notebook_summary(path: Path) -> dict[str, Any]:
    """Title, estimated study time and recorded run of one notebook file."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    title, study = path.stem, None
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = _source_text(cell)
        m = re.search(r"(?m)^#\s+(.+)$", text)
        if m:
            title = m.group(1).strip()
            t = TIME_LINE.search(text)
            # the first clause only: "about 45 minutes. Nothing is trained here" -> "about 45 minutes"
            study = re.split(r"\.\s|;|\s—\s|\s\(", t.group(1))[0].strip().strip("*_ ").rstrip(".") if t else None
            break
    run = nb.get("metadata", {}).get("vae_course", {})
    return {"title": title, "study": study, "seconds": run.get("seconds"),
            "device": run.get("device"), "mode": run.get("mode"), "executed": run.get("executed"),
            "cpu_model": run.get("cpu_model"), "load_before": (run.get("load_before") or [None])[0],
            "load_max": run.get("load_max"), "quiet": run.get("quiet")}


def run_description(s: dict[str, Any]) -> str:
    """'45 s on CPU (2 cores, AMD EPYC), load 0.05 before, 2.10 at most, 2026-11-26' from a summary."""
    text = _human(s["seconds"])
    if not s["device"]:
        return text
    kind, _, name = s["device"].partition(":")
    # "cuda: Tesla T4" -> "Tesla T4"; "cpu: 2 cores, ..." -> "CPU (2 cores, AMD EPYC)"
    where = name.strip() if kind == "cuda" and name.strip() else kind.upper()
    if kind == "cpu" and "cores" in name:
        details = [name.split(",")[0].strip()] + ([s["cpu_model"]] if s.get("cpu_model") else [])
        where += f" ({', '.join(details)})"
    text += f" on {where}"
    if s.get("load_before") is not None and s.get("load_max") is not None:
        text += f", load average {s['load_before']:.2f} before, {s['load_max']:.2f} at most"
    elif s["seconds"] is not None:
        text += ", machine load not recorded"
    if s.get("quiet") is False:
        text += " (busy machine)"
    return text + (f", {s['executed']}" if s["executed"] else "")


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded yet"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


class CourseNotebooks(SphinxDirective):
    """``{course-notebooks}``: a table of every notebook in ``notebooks/``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        rows = ["| # | notebook | study time (the notebook's estimate) | full run, as recorded by `nbtools.py execute` |",
                "|---|---|---|---|"]
        total = 0.0
        for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            self.env.note_dependency(str(path))
            s = notebook_summary(path)
            docname = f"notebooks/{path.stem}"
            if docname not in self.env.found_docs:
                continue  # not in the table of contents yet
            total += s["seconds"] or 0
            run = run_description(s)
            title = re.sub(r"^\d+\.\s*", "", s["title"]).replace("|", "\\|")
            rows.append(f"| {path.stem[:2].lstrip('0')} | {{doc}}`{title} </{docname}>` | "
                        f"{s['study'] or '—'} | {run} |")
        rows.append(f"| | **all notebooks** | | **{_human(total)}** |")
        container = nodes.container(classes=["course-notebooks"])
        self.state.nested_parse(StringList(rows, source="course-notebooks"), self.content_offset, container)
        return [container]


# ------------------------------------------------------- links to course pages
ROLE_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)


def nb_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{nb}`text <target>``` : a link to a course page if it exists, else the text."""
    from sphinx.addnodes import pending_xref

    m = ROLE_TARGET.match(text.strip())
    label, target = (m.group("text"), m.group("target")) if m else (None, text.strip())
    docname = target if "/" in target else f"notebooks/{target}"
    if label is None:
        label = f"notebook {int(target[:2])}" if target[:2].isdigit() else target
    env = inliner.document.settings.env
    if docname not in env.found_docs:
        return [nodes.emphasis(rawtext, label)], []
    ref = pending_xref(rawtext, refdomain="std", reftype="doc", reftarget=f"/{docname}",
                       refexplicit=True, refwarn=True, refdoc=env.docname)
    ref += nodes.inline(rawtext, label, classes=["xref", "std", "std-doc"])
    return [ref], []


# ------------------------------------------------------------- theme fixes
def prose_numbers_module(root: Path):
    """scripts/prose_numbers.py of the book at ROOT, loaded by path (scripts/ is not a package)."""
    path = root / "scripts" / "prose_numbers.py"
    spec = importlib.util.spec_from_file_location("course_prose_numbers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _on_config_inited(app: Sphinx, config: Any) -> None:
    # {{ name }} in the prose pages: numbers from the committed results, never typed.
    substitutions = dict(config.myst_substitutions or {})
    substitutions.update(prose_numbers_module(Path(app.srcdir)).book_substitutions())
    config.myst_substitutions = substitutions
    # pydata-sphinx-theme reads the default colour mode from html_context.
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")
    config.html_context = context
    # pydata-sphinx-theme 0.17 adds a second search box in a top bar unless told
    # not to; sphinx-book-theme already has one in the sidebar.
    options = dict(config.html_theme_options or {})
    options.setdefault("navbar_persistent", [])
    config.html_theme_options = options
    # static/course.css: a few layout adjustments (wider code, scrolling maths)
    config.html_static_path = list(config.html_static_path or []) + [str(Path(__file__).parent / "static")]


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts, seen = [], set()
    for js in context.get("script_files", []):
        attrs = getattr(js, "attributes", {}) or {}
        # inline scripts come with filename None or "" depending on who added them
        key = (getattr(js, "filename", str(js)) or None, tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(js)
    if "script_files" in context:
        context["script_files"] = scripts


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _on_config_inited)
    app.add_css_file("course.css")
    app.add_js_file("course.js", defer="defer")
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("source-read", _on_source_read)
    app.add_role("nb", nb_role)
    app.add_directive("course-notebooks", CourseNotebooks)
    app.setup_extension("launch_links")  # launch buttons open student/NN.ipynb (book/_ext/launch_links.py)
    app.setup_extension("explorers")  # kernel-free explorers on the web page (book/_ext/explorers.py)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
