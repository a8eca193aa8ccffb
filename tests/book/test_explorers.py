"""The web book's kernel-free explorers (book/_ext/explorers.py, static/explorers.js).

Two kinds of checks:

* without a build: where the extension puts each explorer in a notebook, and
  that the committed data (static/explorers/, from scripts/make_explorer_data.py)
  is what the shipped models compute;
* in the built book, in headless Chromium with everything outside the book's own
  server refused (the network is off): each explorer appears once, reacts to the
  pointer, the keyboard or its slider, and shows what the model (or the closed
  form of the KL) says it should; the notebook's frozen ipywidgets view it
  replaces is hidden; without JavaScript nothing of it shows and the static
  figures remain; its panel stays light in the theme's dark mode and in print.
"""
from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import explorers  # noqa: E402

DATA = ROOT / "book" / "_ext" / "static" / "explorers"


def data_file(name: str) -> dict:
    """A committed data file (``window.courseExplorerData[name] = {...};``) as a dict."""
    text = (DATA / f"{name}.js").read_text(encoding="utf-8")
    m = re.search(r"\]\s*=\s*(\{.*\});\s*$", text, re.S)
    assert m, f"{name}.js: not a data file written by scripts/make_explorer_data.py"
    return json.loads(m.group(1))


def sprite(name: str) -> np.ndarray:
    """The sprite sheet of model ``name``, ``(n*28, n*28)`` grey levels 0..255."""
    return np.asarray(Image.open(DATA / f"{name}.png").convert("L"))


def cell_centre(d: dict, col: int, row: int) -> tuple[float, float]:
    """The code at the centre of grid cell (col, row); row 0 is the top (largest z2), as plots.latent_grid."""
    (x0, y0), (x1, y1), n = d["z_min"], d["z_max"], d["grid"]
    return x0 + (col + 0.5) * (x1 - x0) / n, y1 - (row + 0.5) * (y1 - y0) / n


@torch.no_grad()
def decoded_grey(name: str, z: tuple[float, float]) -> np.ndarray:
    """The shipped model's digit at code ``z``, ``(28, 28)`` grey levels 0..255."""
    from vae_course.pretrained import pretrained

    model = pretrained(name, verbose=False)
    image = torch.sigmoid(model.decode(torch.tensor([z], dtype=torch.float32)))[0, 0]
    return (image.clamp(0, 1) * 255).round().numpy()


# ------------------------------------------------------ placement (no build)
def src(cell: dict) -> str:
    return "".join(cell["source"])


def toy_notebook() -> dict:
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2, "version_minor": 0},
              "text/plain": "VBox()"}
    nb = new_notebook(cells=[
        new_markdown_cell("# 4. KL\n\nText."),
        new_code_cell("explorer = kl_explorer(mu=1.0, logvar=-1.0)", outputs=[new_output("display_data", data=widget)]),
        new_code_cell("fig = kl_densities_figure()"),
        new_markdown_cell("Before.\n<!-- explorer: vae-2d-training -->\nAfter."),
    ])
    return json.loads(nbformat.writes(nb))


def test_explorer_follows_the_cell_of_its_ipywidgets_twin():
    cells = explorers.place_explorers(toy_notebook(), "04_kl_divergence")["cells"]
    assert "kl_explorer(" in src(cells[1])
    assert 'data-explorer="kl"' in src(cells[2]) and 'data-replaces-widget="true"' in src(cells[2])
    assert cells[2]["cell_type"] == "markdown" and "\n\n" not in src(cells[2]), \
        "one HTML block: a blank line would end it"


def test_comment_is_replaced_by_its_explorer_as_a_block_of_its_own():
    cells = explorers.place_explorers(toy_notebook(), "07_latent_space")["cells"]
    text = src(cells[-1])
    assert "<!-- explorer:" not in text and 'data-explorer="vae-2d-training"' in text
    assert re.search(r"Before\.\n\n+<div class=\"course-explorer\"[^\n]*</div>\n\n+After\.", text)
    # notebook 7 has no latent_explorer( call here: its code-placed explorer warns instead of vanishing
    assert not any('data-explorer="vae-2d"' in src(c) for c in cells)


def test_a_comment_wins_over_the_code_match():
    nb = toy_notebook()
    nb["cells"][3]["source"] = "<!-- explorer: kl -->"
    cells = explorers.place_explorers(nb, "04_kl_divergence")["cells"]
    placed = [i for i, c in enumerate(cells) if 'data-explorer="kl"' in src(c)]
    assert placed == [len(cells) - 1], "the explorer goes where the comment is, and only there"


def test_unknown_or_lost_explorers_are_build_warnings(monkeypatch):
    said = []
    monkeypatch.setattr(explorers.logger, "warning", lambda msg, **kw: said.append(msg))
    nb = toy_notebook()
    nb["cells"][3]["source"] = "<!-- explorer: no-such-thing -->"
    explorers.place_explorers(nb, "07_latent_space")
    assert any("unknown explorer 'no-such-thing'" in m for m in said)
    assert any("no code cell matches" in m and "'vae-2d'" in m for m in said)


def test_every_explorer_has_its_data():
    for name, e in explorers.EXPLORERS.items():
        assert e.kind in {"kl", "latent", "training"}, name
        if e.data:
            d = data_file(e.data)
            if e.kind == "latent":
                assert sprite(e.data).shape == (d["grid"] * 28, d["grid"] * 28), name
                assert len(d["codes"]) == 2 * len(d["labels"]) and set(d["labels"]) == set(range(10)), name


# --------------------------------------- the committed data is the models' own
@pytest.mark.parametrize("name", ["ae-2d", "vae-2d"])
def test_committed_data_is_what_the_shipped_model_computes(name):
    d = data_file(name)
    from vae_course.data import load_data
    from vae_course.pretrained import pretrained

    try:
        data = load_data("mnist", limit_train=1, limit_test=len(d["labels"]))
    except Exception as err:  # noqa: BLE001 - the message says what is missing
        pytest.skip(f"MNIST is not available here ({err}); set VAE_COURSE_DATA")
    assert d["labels"] == data.test_y.tolist(), "the dots are the first test digits, with their own labels"
    with torch.no_grad():
        out = pretrained(name, verbose=False).encode(data.test_x)
    codes = (out[0] if isinstance(out, tuple) else out).reshape(-1)
    assert torch.allclose(torch.tensor(d["codes"]), codes, atol=0.006), \
        f"{name}.js: the codes differ from the shipped model's: run scripts/make_explorer_data.py"
    sheet, rng = sprite(name), np.random.default_rng(0)
    for col, row in rng.integers(0, d["grid"], size=(4, 2)):
        tile = sheet[row * 28:(row + 1) * 28, col * 28:(col + 1) * 28].astype(float)
        assert np.abs(tile - decoded_grey(name, cell_centre(d, col, row))).max() <= 2, \
            f"{name}.png: tile ({col}, {row}) is not the decoder's digit at its cell's centre"


def test_training_animation_records_what_ran():
    d = data_file("vae-2d-training")
    frames = d["frames"]
    assert [f["epoch"] for f in frames] == list(range(d["config"]["epochs"] + 1))
    assert all(len(f["codes"]) == 2 * len(d["labels"]) for f in frames)
    assert d["config"]["latent_dim"] == 2 and d["config"]["limit_train"] and "Trainer" in d["what_ran"]
    losses = [f["test_loss"] for f in frames[1:]]
    assert losses[-1] < losses[0], "the recorded test loss falls during training"
    assert max(abs(v) for f in frames for v in f["codes"]) <= d["extent"], "every code is inside the plane"


# ------------------------------------------------------------ in the browser
def explorer_pages(book_html: Path) -> dict[str, list[str]]:
    """explorer name -> the built pages (docnames) that carry it."""
    found: dict[str, list[str]] = {}
    for path in sorted(book_html.rglob("*.html")):
        for name in re.findall(r'class="course-explorer" data-explorer="([^"]+)"', path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(str(path.relative_to(book_html).with_suffix("")))
    return found


@pytest.fixture(scope="module")
def placed(book_html):
    return explorer_pages(book_html)


@pytest.fixture(scope="module")
def context(browser, site_url):
    """A browser context that reaches only the book's own server (the network is off)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    host = urlparse(site_url).netloc
    ctx.outside = []

    def only_local(route):
        if urlparse(route.request.url).netloc == host:
            route.continue_()
        else:
            ctx.outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    yield ctx
    ctx.close()


def open_explorer(context, site_url, placed, name):
    """The page with explorer ``name``, scrolled to it once it is ready; (page, its root locator, errors)."""
    pages = placed.get(name, [])
    assert len(pages) == 1, (
        f"explorer {name!r} should be on exactly one page of the book, found {pages}: "
        + (f"put <!-- explorer: {name} --> in a Markdown cell where it belongs" if not pages else "remove the extra"))
    page, errors = context.new_page(), []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") and "explorer" in m.text
            else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.goto(f"{site_url}/{pages[0]}.html", wait_until="load")
    root = page.locator(f'.course-explorer[data-explorer="{name}"]')
    page.wait_for_function(f"() => document.querySelector('.course-explorer[data-explorer=\"{name}\"]')"
                           f".dataset.ready", timeout=20_000)
    assert root.get_attribute("data-ready") == "true", f"{name}: the explorer failed to start: {errors}"
    root.scroll_into_view_if_needed()
    page.wait_for_timeout(200)
    return page, root, errors


def set_slider(locator, value: float) -> None:
    """Set a range input as a reader's drag leaves it: the value, then its input event."""
    locator.evaluate("(e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }", str(value))


def canvas_pixels(locator) -> str:
    return locator.evaluate("c => c.toDataURL('image/png')")


def test_every_explorer_is_placed_once(placed):
    for name in explorers.EXPLORERS:
        assert len(placed.get(name, [])) == 1, (
            f"explorer {name!r} is on {placed.get(name, [])}: each belongs on exactly one page "
            f"(a notebook Markdown cell with <!-- explorer: {name} -->, or its code match)")


def test_kl_explorer_computes_the_closed_form(context, site_url, placed):
    from vae_course.losses import kl_divergence

    page, root, errors = open_explorer(context, site_url, placed, "kl")
    plot, value = root.locator("canvas.cx-kl-plot"), root.locator(".cx-kl-value")
    mu, sigma = root.locator('input[data-param="mu"]'), root.locator('input[data-param="sigma"]')

    def shown_matches_the_package() -> float:
        m, s = float(mu.input_value()), float(sigma.input_value())
        expected = kl_divergence(torch.tensor([[m]]), torch.tensor([[math.log(s * s)]])).item()
        closed_form = 0.5 * (m * m + s * s - 1 - math.log(s * s))  # notebook 4, section 2
        assert float(value.get_attribute("data-value")) == pytest.approx(closed_form, rel=1e-10, abs=1e-12), (m, s)
        assert closed_form == pytest.approx(expected, rel=1e-5, abs=1e-6), "the package's KL agrees"
        assert value.inner_text() == f"{closed_form:.4f}", (m, s, value.inner_text())
        return expected

    first, before = shown_matches_the_package(), canvas_pixels(plot)
    set_slider(mu, -1.5)
    set_slider(sigma, 2.3)
    after = shown_matches_the_package()
    assert after != first and canvas_pixels(plot) != before, "moving the sliders must redraw the densities"
    # A real drag with the mouse: grab the μ slider near its left end and pull it to the right end.
    box = mu.bounding_box()
    page.mouse.move(box["x"] + 4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    assert float(mu.input_value()) > 2.5, "dragging the μ slider to its right end"
    assert shown_matches_the_package() != after
    assert not errors and not context.outside, (errors, context.outside)
    page.close()


@pytest.mark.parametrize("name", ["vae-2d", "ae-2d"])
def test_latent_explorer_decodes_the_point_under_the_pointer(context, site_url, placed, name):
    page, root, errors = open_explorer(context, site_url, placed, name)
    d = data_file(name)
    plane, digit, readout = root.locator("canvas.cx-plane"), root.locator("canvas.cx-digit"), root.locator(".cx-readout")
    box = plane.bounding_box()
    seen = []
    for fx, fy in [(0.3, 0.3), (0.75, 0.6)]:  # two points of the plot area (inside the axes' margins)
        page.mouse.move(box["x"] + 40 + fx * (box["width"] - 50), box["y"] + 10 + fy * (box["height"] - 40))
        page.wait_for_timeout(100)
        col, row = (int(v) for v in digit.get_attribute("data-cell").split(","))
        z = cell_centre(d, col, row)
        pixels = np.array(digit.evaluate(
            "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)")).reshape(28, 28, 4)[..., 0]
        assert np.abs(pixels - decoded_grey(name, z)).max() <= 2, \
            f"{name}: the digit shown at cell ({col}, {row}) is not the model's decoding of z = {z}"
        assert f"z = ({z[0]:.2f}, {z[1]:.2f})".replace("-", "−") in readout.inner_text()
        seen.append(((col, row), canvas_pixels(digit)))
    assert seen[0][0] != seen[1][0] and seen[0][1] != seen[1][1], "moving the pointer must change the digit"
    # Dragging (a touch screen's way) and the keyboard move the point too.
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=6)
    page.mouse.up()
    dragged = digit.get_attribute("data-cell")
    plane.focus()
    page.keyboard.press("ArrowLeft")
    col, row = (int(v) for v in dragged.split(","))
    assert digit.get_attribute("data-cell") == f"{max(col - 1, 0)},{row}", "the left arrow moves one grid cell"
    assert not errors and not context.outside, (errors, context.outside)
    page.close()


def test_training_animation_scrubs_and_plays(context, site_url, placed):
    page, root, errors = open_explorer(context, site_url, placed, "vae-2d-training")
    d = data_file("vae-2d-training")
    plane, scrub, readout = root.locator("canvas.cx-plane"), root.locator('input[data-param="epoch"]'), \
        root.locator(".cx-readout")
    last = d["frames"][-1]
    assert plane.get_attribute("data-epoch") == str(last["epoch"])
    assert f"test loss {last['test_loss']:.2f}" in readout.inner_text(), "the loss recorded for that epoch"
    end = canvas_pixels(plane)
    set_slider(scrub, 0)
    assert plane.get_attribute("data-epoch") == "0" and canvas_pixels(plane) != end
    set_slider(scrub, 5)
    assert f"test loss {d['frames'][5]['test_loss']:.2f}" in readout.inner_text()
    set_slider(scrub, 0)
    root.locator("button.cx-play").click()
    page.wait_for_function("() => +document.querySelector('[data-explorer=\"vae-2d-training\"] canvas.cx-plane')"
                           ".dataset.epoch >= 2", timeout=10_000)
    assert not errors and not context.outside, (errors, context.outside)
    page.close()


@pytest.mark.parametrize("name", ["kl", "vae-2d"])
def test_the_frozen_widget_it_replaces_is_hidden(context, site_url, placed, name):
    page, root, _ = open_explorer(context, site_url, placed, name)
    cell = root.locator("xpath=preceding-sibling::*[1]")
    assert "course-explorer-replaced" in (cell.get_attribute("class") or "")
    assert not cell.locator(".cell_output").is_visible(), "the frozen ipywidgets view is hidden"
    assert cell.locator(".cell_input").is_visible(), "the notebook's code stays on the page"
    page.close()


def test_without_javascript_the_static_figures_remain(browser, site_url, placed):
    ctx = browser.new_context(java_script_enabled=False)
    try:
        for name, pages in placed.items():
            page = ctx.new_page()
            page.goto(f"{site_url}/{pages[0]}.html")
            assert not page.locator(f'[data-explorer="{name}"]').is_visible(), f"{name}: an empty box without JS"
            assert page.locator(".cell_output img").count() > 0, "the notebook's static figures are on the page"
            page.close()
    finally:
        ctx.close()


@pytest.mark.parametrize("mode", ["dark", "print"])
def test_explorer_panels_stay_light(context, site_url, placed, mode):
    page, root, _ = open_explorer(context, site_url, placed, "vae-2d")
    if mode == "dark":
        page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
    else:
        page.emulate_media(media="print")
    colours = root.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    assert colours == ["rgb(255, 255, 255)", "rgb(34, 34, 34)"], f"{mode}: the panel must stay dark-on-white: {colours}"
    assert root.is_visible()
    page.close()
