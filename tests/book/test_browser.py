"""The built book, opened in headless Chromium (run by `make book-test`).

For every page in ``_toc.yml`` (the welcome page, each notebook, and the prose
pages) it checks what a reader would notice:

* no console errors and no uncaught JavaScript exceptions;
* nothing is fetched from outside the local server (the test build uses local
  copies of MathJax and the widget renderer; see scripts/book_assets.sh);
* the maths is typeset: MathJax output for every formula, no TeX error boxes,
  and no raw ``$$``, ``\\[`` or TeX commands left in the visible text;
* no raw Markdown or LaTeX anywhere in the visible text, cell outputs included:
  a ``|---|`` table rule, ``\\(``, ``\\[`` or ``$$`` means a table or a formula
  was not rendered (``raw_markup``; its unit tests need no build);
* every image has loaded (``naturalWidth > 0``), output figures included;
* saved widget views are rendered;
* on notebook pages, the Colab launch button opens that very ``.ipynb``;

and it saves a full-page screenshot of each page under ``_build/screenshots/``
(look at them: layout, clipped figures and unreadable plots are not testable).
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def toc_docnames() -> list[str]:
    """Every file of the book in reading order (root first), from ``_toc.yml``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(Path(n).with_suffix("")) for n in names]


def repo_settings() -> tuple[str, str]:
    """(repository URL, branch) from ``_config.yml``, where they live."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


PAGES = toc_docnames()
NOTEBOOK_PAGES = [p for p in PAGES if p.startswith("notebooks/")]
# TeX that survived into the visible text means MathJax did not typeset it.
RAW_TEX = re.compile(r"\$\$|\\\[|\\\]|\\(?:begin|end)\{|\\(?:frac|mathbb|mathcal|mathrm|sum|prod|sigma|mu|log|left|right|operatorname)\b")

# Markdown or LaTeX that should have been rendered: a table's rule row, or maths delimiters.
RAW_MARKUP = re.compile(r"\|\s*:?-{3,}:?\s*\||—\|—|\\\(|\\\)|\\\[|\\\]|\$\$")
NOT_PROSE = {"pre", "code", "script", "style", "mjx-container"}


def raw_markup(text: str) -> list[str]:
    """The raw table rules and maths delimiters in a page's visible TEXT (empty when all rendered)."""
    return sorted({m.group(0) for m in RAW_MARKUP.finditer(text)})


class _VisibleText(HTMLParser):
    """The text a reader sees in an HTML page, without code and typeset maths (as VISIBLE_TEXT_WITH_OUTPUTS_JS)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in NOT_PROSE:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in NOT_PROSE and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def visible_text_of_html(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return "".join(parser.parts)


# The same, with cell outputs kept: a Markdown output rendered as CommonMark shows its table as text.
VISIBLE_TEXT_WITH_OUTPUTS_JS = """() => {
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, mjx-container, script, style').forEach(e => e.remove());
  return clone.innerText;
}"""

VISIBLE_TEXT_JS = """() => {
  // The article's visible text, without code (code may legitimately contain $$ or backslashes).
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, mjx-container, script, style, .cell_output .output')
       .forEach(e => e.remove());
  return clone.innerText;
}"""

IMAGES_JS = """() => Array.from(document.images).map(img => ({
  src: img.getAttribute('src'), alt: img.getAttribute('alt'),
  loaded: img.complete && img.naturalWidth > 0,
  output: !!img.closest('.cell_output'),
}))"""


def _html_path(docname: str) -> str:
    return f"/{docname}.html"


@pytest.fixture(scope="module")
def visited(browser, site_url, screenshots_dir):
    """Open each page once and record everything the checks need."""
    results = {}
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    host = urlparse(site_url).netloc

    def only_local(route):
        if urlparse(route.request.url).netloc == host:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    for docname in PAGES:
        external, console_errors = [], []
        page = context.new_page()
        page.route("**/*", only_local)
        page.on("console", lambda m, errs=console_errors: errs.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e, errs=console_errors: errs.append(f"uncaught: {e}"))
        # name the missing file (the console only says "Failed to load resource")
        page.on("response", lambda r, errs=console_errors: errs.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)
        response = page.goto(site_url + _html_path(docname), wait_until="load")
        status = response.status if response else None
        # Wait for MathJax to finish typesetting (it loads deferred) and for widgets to render.
        page.wait_for_function("() => !document.querySelector('.math') || "
                               "(window.MathJax && MathJax.startup && MathJax.startup.promise)", timeout=30_000)
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if n_views:
            try:
                page.wait_for_function(f"() => document.querySelectorAll('.widget-view, .jupyter-widgets.widget-container, "
                                       f".jupyter-widgets').length >= 1", timeout=15_000)
            except Exception:
                pass  # reported by the widget check below
        page.wait_for_timeout(300)
        shot = screenshots_dir / (docname.replace("/", "__") + ".png")
        # Grow the window to the page's height and take a plain screenshot: Chromium's
        # full-page capture can shift the sticky sidebar mid-transition.
        height = page.evaluate("() => document.documentElement.scrollHeight")
        page.set_viewport_size({"width": 1280, "height": min(height, 16_000)})
        page.wait_for_timeout(400)
        page.screenshot(path=str(shot), full_page=height > 16_000)
        colab = page.evaluate("() => Array.from(document.querySelectorAll('a[href*=\"colab.research.google.com\"]'))"
                              ".map(a => a.href)")
        results[docname] = {
            "status": status,
            "console_errors": console_errors,
            "external": external,
            "math_sources": page.locator(".math").count(),
            "math_rendered": page.locator("mjx-container").count(),
            "math_errors": page.locator("mjx-merror").count(),
            "text": page.evaluate(VISIBLE_TEXT_JS),
            "text_with_outputs": page.evaluate(VISIBLE_TEXT_WITH_OUTPUTS_JS),
            "images": page.evaluate(IMAGES_JS),
            "widget_views": n_views,
            "widgets_rendered": page.locator(".jupyter-widgets, .widget-view").count(),
            "colab_links": colab,
            "title": page.title(),
            "screenshot": shot,
        }
        page.close()
    context.close()
    return results


@pytest.mark.parametrize("docname", PAGES)
def test_page_loads_without_errors(visited, docname):
    page = visited[docname]
    assert page["status"] == 200, f"{docname}: HTTP {page['status']}"
    assert not page["console_errors"], f"{docname}: console errors:\n" + "\n".join(page["console_errors"])
    assert not page["external"], (f"{docname}: the page fetched from outside the book (offline this fails):\n"
                                  + "\n".join(page["external"]))
    assert page["screenshot"].stat().st_size > 10_000, f"{docname}: the screenshot looks empty"


@pytest.mark.parametrize("docname", PAGES)
def test_maths_is_typeset(visited, docname):
    page = visited[docname]
    if docname == "book/intro" or docname.startswith("notebooks/"):
        assert page["math_sources"] > 0, f"{docname}: no maths on the page at all"
    assert page["math_rendered"] >= page["math_sources"], (
        f"{docname}: {page['math_sources']} formulas but only {page['math_rendered']} typeset by MathJax")
    assert page["math_errors"] == 0, f"{docname}: {page['math_errors']} TeX errors (red boxes) on the page"
    raw = sorted(set(m.group(0) for m in RAW_TEX.finditer(page["text"])))
    assert not raw, f"{docname}: raw TeX left in the visible text: {raw}"


@pytest.mark.parametrize("docname", PAGES)
def test_no_raw_markdown_or_latex(visited, docname):
    raw = raw_markup(visited[docname]["text_with_outputs"])
    assert not raw, (f"{docname}: raw Markdown/LaTeX in the visible text (a table or formula not rendered; "
                     f"is nb_render_markdown_format 'myst'?): {raw}")


BROKEN_PAGE = """<main><h1>Results</h1>
<div class="cell_output"><div class="output text_markdown"><p>| model | NLL |
|---|---|
| conv | 85.71 |</p></div></div>
<p>The bound is \\(\\log p(x)\\) and $$x^2$$.</p></main>"""
GOOD_PAGE = """<main><h1>Results</h1><table><tr><th>model</th><th>NLL</th></tr></table>
<p>The bound is <mjx-container>log p(x)</mjx-container>.</p>
<pre>print("|---|")  # code may show anything</pre><p>A dash — or two — is prose.</p></main>"""


def test_raw_markup_detector_catches_a_broken_page():
    found = raw_markup(visible_text_of_html(BROKEN_PAGE))
    assert "|---|" in found and "\\(" in found and "$$" in found, found


def test_raw_markup_detector_passes_a_rendered_page():
    assert raw_markup(visible_text_of_html(GOOD_PAGE)) == []


@pytest.mark.parametrize("docname", PAGES)
def test_every_image_loaded(visited, docname):
    page = visited[docname]
    broken = [img["src"] for img in page["images"] if not img["loaded"]]
    assert not broken, f"{docname}: images that did not load: {broken}"
    no_alt = [img["src"] for img in page["images"] if img["output"] and not (img["alt"] or "").strip()]
    assert not no_alt, f"{docname}: output figures without alt text: {no_alt}"


@pytest.mark.parametrize("docname", PAGES)
def test_widgets_render(visited, docname):
    page = visited[docname]
    if page["widget_views"]:
        assert page["widgets_rendered"] > 0, (
            f"{docname}: {page['widget_views']} saved widget views but none rendered "
            "(is the widget renderer loaded? see nb_ipywidgets_js)")


@pytest.mark.parametrize("docname", NOTEBOOK_PAGES or [pytest.param(None, marks=pytest.mark.skip("no notebook in _toc.yml yet"))])
def test_colab_button_opens_this_notebook(visited, docname):
    url, branch = repo_settings()
    expected = (f"https://colab.research.google.com/github/{url.split('github.com/')[1]}"
                f"/blob/{branch}/{docname}.ipynb")
    links = visited[docname]["colab_links"]
    assert expected in links, f"{docname}: no Colab link to {expected}; found {links}"
    assert all(link == expected for link in links), f"{docname}: a Colab link points elsewhere: {links}"


def test_every_notebook_is_in_the_book():
    """Each notebooks/NN_*.ipynb must be in _toc.yml (and so in the book)."""
    on_disk = sorted(f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [d for d in on_disk if d not in PAGES] == [], "notebooks missing from _toc.yml"
    assert NOTEBOOK_PAGES == sorted(NOTEBOOK_PAGES), "_toc.yml lists the notebooks out of order"
