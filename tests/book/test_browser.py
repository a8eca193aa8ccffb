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
* every page fits every screen, at 390 px (a phone) and 1280 px (a laptop): the
  page is never wider than the window, nothing in the article sticks out of it
  unless it sits in a box that scrolls sideways, no equation is clipped (one
  wider than its box scrolls inside it), no output text is cut, and a table's
  NLL column is visible without scrolling at 1280 px;

and it saves full-page screenshots of each page under ``_build/screenshots/``:
``<page>.png`` (1280 px), ``<page>__dark.png`` (1280 px, the theme's dark mode)
and ``<page>__390.png`` (a phone). Look at them: legibility is not testable.
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


WIDTHS = {"phone": 390, "laptop": 1280}

# What "fits the screen" means, measured in the page (see the module docstring).
LAYOUT_JS = """() => {
  const W = document.documentElement.clientWidth;
  const article = document.querySelector('.bd-article') || document.body;
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const scroller = (el, self) => {  // the nearest box that scrolls sideways: the element or an ancestor
    for (let a = self ? el : el.parentElement; a && a !== document.body; a = a.parentElement) if (scrolls(a)) return a;
    return null;
  };
  const visible = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  const describe = el => {
    const cls = typeof el.className === 'string' ? el.className.trim().split(/\\s+/).slice(0, 2).join('.') : '';
    return el.tagName.toLowerCase() + (cls ? '.' + cls : '') + ' "' + (el.textContent || '').trim().slice(0, 70) + '"';
  };
  // 1. the article's elements that stick out of the window, outside any box that scrolls within it
  const out = [];
  for (const el of article.querySelectorAll('*')) {
    if (el.closest('mjx-assistive-mml') || !visible(el)) continue;  // MathJax's hidden copy for screen readers
    if (el.getBoundingClientRect().right <= W + 1) continue;
    const s = scroller(el, false);
    if (s && s.getBoundingClientRect().right <= W + 1) continue;
    out.push(el);
  }
  const sticking_out = out.filter(el => !out.includes(el.parentElement)).map(describe);
  // 2. equations wider (or taller) than their box, where that box does not scroll
  const clipped_math = [];
  for (const el of document.querySelectorAll('mjx-container')) {
    if (!visible(el) || el.closest('.bd-sidebar-primary, .bd-sidebar-secondary')) continue;
    const style = getComputedStyle(el);
    if (style.overflowX !== 'visible') {  // a box of its own (display maths): what it cannot show must scroll
      const wide = el.scrollWidth > el.clientWidth + 1, tall = el.scrollHeight > el.clientHeight + 1;
      if ((wide && !scrolls(el)) || (tall && style.overflowY !== 'visible'))
        clipped_math.push(describe(el) + ' ' + el.scrollWidth + 'x' + el.scrollHeight + ' in ' + el.clientWidth + 'x' + el.clientHeight);
    } else {  // it spills: it must stay inside the line's box, or sit in a box that scrolls
      let block = el.parentElement;
      while (block && getComputedStyle(block).display.startsWith('inline')) block = block.parentElement;
      const r = el.getBoundingClientRect(), b = block.getBoundingClientRect();
      if (r.right > b.right + 1 && !scroller(el, false)) clipped_math.push(describe(el) + ' (wider than its line)');
    }
  }
  // 3. output text wider than its box, where the box does not scroll
  const cut_outputs = [];
  for (const el of document.querySelectorAll('.cell_output pre, .cell_output .output')) {
    if (visible(el) && el.scrollWidth > el.clientWidth + 1 && !scrolls(el)) cut_outputs.push(describe(el));
  }
  // 4. at any width: NLL columns and where they end, against the right edge of their table's box
  const nll_columns = [];
  for (const th of article.querySelectorAll('table th')) {
    if (!/NLL/.test(th.textContent)) continue;
    const box = scroller(th, false) || th.closest('table');
    nll_columns.push({header: th.textContent.trim(), right: th.getBoundingClientRect().right,
                      visible_right: Math.min(box.getBoundingClientRect().right, W)});
  }
  return {window: W, document: document.documentElement.scrollWidth, sticking_out, clipped_math, cut_outputs, nll_columns};
}"""


def load_book_page(page, url: str) -> int | None:
    """Open ``url`` in ``page`` and wait until the maths is typeset and widgets are drawn; the HTTP status."""
    response = page.goto(url, wait_until="load")
    # Wait for MathJax to finish typesetting (it loads deferred) and for widgets to render.
    page.wait_for_function("() => !document.querySelector('.math') || "
                           "(window.MathJax && MathJax.startup && MathJax.startup.promise)", timeout=30_000)
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        try:
            page.wait_for_function("() => document.querySelectorAll('.widget-view, .jupyter-widgets.widget-container, "
                                   ".jupyter-widgets').length >= 1", timeout=15_000)
        except Exception:
            pass  # reported by the widget check below
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.wait_for_timeout(300)  # course.js fits the equations once MathJax is done
    return response.status if response else None


def full_screenshot(page, path: Path, width: int) -> None:
    """Grow the window to the page's height and take a plain screenshot: Chromium's
    full-page capture can shift the sticky sidebar mid-transition."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": min(height, 16_000)})
    page.wait_for_timeout(400)
    page.screenshot(path=str(path), full_page=height > 16_000)


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
        status = load_book_page(page, site_url + _html_path(docname))
        n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        layout = page.evaluate(LAYOUT_JS)  # at the laptop width, before the window grows for the screenshot
        shot = screenshots_dir / (docname.replace("/", "__") + ".png")
        full_screenshot(page, shot, WIDTHS["laptop"])
        # The theme's dark mode, as a reader who switches sees it (the explorers and figures keep light panels).
        page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
        full_screenshot(page, shot.with_name(shot.stem + "__dark.png"), WIDTHS["laptop"])
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
            "layout": layout,
        }
        page.close()
    context.close()
    return results


@pytest.fixture(scope="module")
def visited_phone(browser, site_url, screenshots_dir):
    """Every page at a phone's width: its layout measurements, and a screenshot ``<page>__390.png``."""
    results = {}
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 844}, device_scale_factor=1)
    host = urlparse(site_url).netloc
    context.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).netloc == host
                  else route.abort())
    for docname in PAGES:
        page = context.new_page()
        load_book_page(page, site_url + _html_path(docname))
        results[docname] = page.evaluate(LAYOUT_JS)
        full_screenshot(page, screenshots_dir / (docname.replace("/", "__") + "__390.png"), WIDTHS["phone"])
        page.close()
    context.close()
    return results


def _layout(visited, visited_phone, docname: str, width: str) -> dict:
    return visited[docname]["layout"] if width == "laptop" else visited_phone[docname]


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
    """The page's Colab button opens the *student* copy of this notebook (student/NN_*.ipynb)."""
    url, branch = repo_settings()
    student = "student/" + docname.split("/", 1)[1]
    expected = (f"https://colab.research.google.com/github/{url.split('github.com/')[1]}"
                f"/blob/{branch}/{student}.ipynb")
    links = visited[docname]["colab_links"]
    assert expected in links, f"{docname}: no Colab link to {expected}; found {links}"
    assert all(link == expected for link in links), f"{docname}: a Colab link points elsewhere: {links}"


def test_every_notebook_is_in_the_book():
    """Each notebooks/NN_*.ipynb must be in _toc.yml (and so in the book)."""
    on_disk = sorted(f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [d for d in on_disk if d not in PAGES] == [], "notebooks missing from _toc.yml"
    assert NOTEBOOK_PAGES == sorted(NOTEBOOK_PAGES), "_toc.yml lists the notebooks out of order"


# ------------------------------------------------------- every page fits every screen
@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("docname", PAGES)
def test_page_fits_the_window(visited, visited_phone, docname, width):
    layout = _layout(visited, visited_phone, docname, width)
    assert layout["document"] <= layout["window"], (
        f"{docname} at {WIDTHS[width]} px: the page is {layout['document']} px wide, so it scrolls sideways")
    assert not layout["sticking_out"], (
        f"{docname} at {WIDTHS[width]} px: these stick out of the window (make them wrap, shrink, or scroll "
        f"in their own box; see book/_ext/static/course.css):\n" + "\n".join(layout["sticking_out"][:10]))


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("docname", PAGES)
def test_no_equation_is_clipped(visited, visited_phone, docname, width):
    clipped = _layout(visited, visited_phone, docname, width)["clipped_math"]
    assert not clipped, (f"{docname} at {WIDTHS[width]} px: equations wider than their box that cannot scroll:\n"
                         + "\n".join(clipped[:10]))


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("docname", PAGES)
def test_no_output_text_is_cut(visited, visited_phone, docname, width):
    cut = _layout(visited, visited_phone, docname, width)["cut_outputs"]
    assert not cut, f"{docname} at {WIDTHS[width]} px: output text cut at its box's edge:\n" + "\n".join(cut[:10])


@pytest.mark.parametrize("docname", PAGES)
def test_nll_column_is_visible_on_a_laptop(visited, docname):
    """The prose tells readers to read a table's NLL column: at 1280 px it shows without scrolling."""
    for column in visited[docname]["layout"]["nll_columns"]:
        assert column["right"] <= column["visible_right"] + 1, (
            f"{docname}: the column \"{column['header']}\" ends at {column['right']:.0f} px, past the visible "
            f"edge of its table ({column['visible_right']:.0f} px): put it right after the row labels")


def test_the_results_tables_have_an_nll_column(visited):
    """The check above is not vacuous: the two tables the issue named are measured."""
    named = {d: len(visited[d]["layout"]["nll_columns"]) for d in ("notebooks/06_gpu_vae", "book/results")
             if d in visited}
    assert named and all(named.values()), f"no table with an NLL column found on {named}"
