"""Every figure in the notebooks is a figure: a caption, a specific alt text, readable text.

Part 1, all nine notebooks (issue 20, item 2): every code cell whose outputs
include an image carries, in its metadata (what myst-nb and the book read),

    metadata["mystnb"] = {"figure": {"caption": ...}, "image": {"alt": ...}}

a caption of one sentence (what the figure shows and what to notice) and an
alt text that is specific: not the book's generic fallback ("Figure from the
section ..."), at least a sentence long, different from the caption and from
every other figure's alt text. :func:`figure_problems` is the check; a test
breaks a copy of a notebook to show that it fails.

Part 2, all nine notebooks: the figures follow the course's one plotting style
(vae_course.plots): no notebook changes matplotlib's settings itself, no figure
is wider than the style allows, and no font size a cell sets is below the floor
for its figure's width (plots.readable_fontsize).

Part 3, the diagrams in notebooks 2, 3 and 5 (issue 13, item 2): every one is
drawn by ``vae_course.diagrams`` where its idea first appears, and the book
gives it the alt text the package writes for it. These tests recompute it from
the notebook's own inputs and fail when the diagram, its wording or the
notebook's numbers change without the metadata following.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vae_course import diagrams, models, plots  # noqa: E402
from vae_course.toy_models import LinearGaussian  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ALL_NOTEBOOKS = sorted(p.name for p in NOTEBOOKS.glob("0*.ipynb"))
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
# The book's extension writes these when a cell has no alt text of its own: never good enough.
GENERIC_ALT = re.compile(r"^\s*(figure from the section|figure:|figure\b|image\b|plot\b|output\b)", re.I)
MIN_ALT_WORDS = 8
MIN_CAPTION_WORDS = 6


# ------------------------------------------------------- part 1: captions and alt texts
def figure_cells(nb) -> list:
    """The code cells of ``nb`` that output at least one image."""
    return [c for c in nb.cells if c.cell_type == "code"
            and any(t in out.get("data", {}) for out in c.get("outputs", []) for t in IMAGE_TYPES)]


def _caption(cell) -> str:
    figure = cell.metadata.get("mystnb", {}).get("figure", {})
    return figure.get("caption", "") if isinstance(figure, dict) else ""


def _words(text: str) -> int:
    return len(text.split())


def figure_problems(nb, name: str = "notebook") -> list[str]:
    """One line per figure of ``nb`` whose caption or alt text is missing or not specific."""
    problems, seen = [], {}
    for cell in figure_cells(nb):
        where = f"{name}, cell {cell.get('id')}"
        caption, alt = _caption(cell).strip(), _alt(cell).strip()
        if not caption:
            problems.append(f"{where}: no caption (metadata.mystnb.figure.caption)")
        elif _words(caption) < MIN_CAPTION_WORDS or not caption.endswith("."):
            problems.append(f"{where}: the caption should be a sentence saying what the figure shows: {caption!r}")
        elif re.search(r"[.!?]\s+[A-Z]", caption):
            problems.append(f"{where}: the caption should be one sentence: {caption!r}")
        if not alt:
            problems.append(f"{where}: no alt text (metadata.mystnb.image.alt)")
            continue
        if GENERIC_ALT.match(alt):
            problems.append(f"{where}: generic alt text {alt[:60]!r}: say what is plotted and what it shows")
        if _words(alt) < MIN_ALT_WORDS:
            problems.append(f"{where}: alt text of {_words(alt)} words is too short to describe a figure: {alt!r}")
        if alt == caption:
            problems.append(f"{where}: the alt text repeats the caption; describe what is drawn instead")
        if alt in seen:
            problems.append(f"{where}: the same alt text as cell {seen[alt]}")
        seen[alt] = cell.get("id")
    return problems


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_every_figure_has_a_caption_and_a_specific_alt_text(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert figure_cells(nb), f"{name}: no figure found; is the notebook executed?"
    assert figure_problems(nb, name) == []


def test_no_two_figures_of_the_course_share_an_alt_text():
    owner: dict[str, str] = {}
    for name in ALL_NOTEBOOKS:
        for cell in figure_cells(nbformat.read(NOTEBOOKS / name, as_version=4)):
            alt = _alt(cell).strip()
            if alt:
                assert alt not in owner, f"{name}, cell {cell.get('id')}: the same alt text as {owner[alt]}"
                owner[alt] = f"{name}, cell {cell.get('id')}"


def test_the_check_fails_on_a_broken_copy(tmp_path):
    """The check is real: break a copy of notebook 1 in each way it guards against, on disk."""
    good = nbformat.read(NOTEBOOKS / "01_autoencoder.ipynb", as_version=4)
    assert figure_problems(good) == []
    first, second = figure_cells(good)[:2]

    def broken(change) -> list[str]:
        nb = copy.deepcopy(good)
        cells = {c.get("id"): c for c in figure_cells(nb)}
        change(cells[first.get("id")], cells[second.get("id")])
        path = tmp_path / "broken.ipynb"
        nbformat.write(nb, path)
        return figure_problems(nbformat.read(path, as_version=4))

    def no_caption(a, b):
        del a.metadata["mystnb"]["figure"]

    def generic(a, b):
        a.metadata["mystnb"]["image"]["alt"] = "Figure from the section “1. Compress, then reconstruct”"

    def repeated(a, b):
        b.metadata["mystnb"]["image"]["alt"] = a.metadata["mystnb"]["image"]["alt"]

    def short(a, b):
        a.metadata["mystnb"]["image"]["alt"] = "Sixteen digits."

    def same_as_caption(a, b):
        a.metadata["mystnb"]["image"]["alt"] = a.metadata["mystnb"]["figure"]["caption"]

    def two_sentences(a, b):
        a.metadata["mystnb"]["figure"]["caption"] += " It also shows more."

    for change, words in ((no_caption, "no caption"), (generic, "generic"), (repeated, "same alt text"),
                          (short, "too short"), (same_as_caption, "repeats the caption"),
                          (two_sentences, "one sentence")):
        problems = broken(change)
        assert len(problems) == 1 and words in problems[0], (change.__name__, problems)


# ------------------------------------------------------- part 2: one style, readable at the figure's size
def _code(name: str) -> list:
    return [c for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_the_style_is_set_in_one_place(name):
    """Notebooks use vae_course.plots' style: none sets matplotlib's rcParams itself."""
    for cell in _code(name):
        assert "rcParams" not in cell.source and "rc_context" not in cell.source, (
            f"{name}, cell {cell.get('id')}: set figure styles in vae_course.plots.COURSE_STYLE, not in a notebook")


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_figure_sizes_and_font_sizes_are_readable_in_the_book(name):
    """A figure wider than the style allows, or a font set below the floor for its figure's width,
    comes out smaller than 9 px in the book's column (notebook 1 had 8 pt legends on 15 in figures)."""
    default_width = plots.COURSE_STYLE["figure.figsize"][0]
    for cell in _code(name):
        widths = [float(w) for w in re.findall(r"figsize=\(\s*([0-9.]+)\s*,", cell.source)]
        for width in widths:
            assert width <= plots.MAX_FIGURE_WIDTH_IN + 1e-9, (
                f"{name}, cell {cell.get('id')}: figsize width {width} in is wider than "
                f"{plots.MAX_FIGURE_WIDTH_IN:.1f} in; use fewer panels per row")
        floor = plots.readable_fontsize(max(widths, default=default_width))
        for size in re.findall(r"fontsize=([0-9.]+)", cell.source):
            assert float(size) >= floor - 1e-9, (
                f"{name}, cell {cell.get('id')}: fontsize={size} is below {floor:.1f} pt, the smallest "
                "readable size at this figure's width; leave it out to use the course style")


# ------------------------------------------------------- part 3: the diagrams


def _cells(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4).cells


def _cell_calling(name: str, call: str):
    """The one code cell of notebook ``name`` whose source contains ``call``."""
    found = [c for c in _cells(name) if c.cell_type == "code" and call in c.source]
    assert len(found) == 1, f"{name}: expected one cell calling {call}, found {len(found)}"
    return found[0]


def _alt(cell) -> str:
    return cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_architecture_in_notebook_5_has_the_packages_alt_text():
    cell = _cell_calling("05_full_vae.ipynb", "diagrams.vae_architecture(")
    # The notebook draws `mine`, the completed seed model: the same layers as models.VAE().
    assert _alt(cell) == diagrams.vae_architecture(models.VAE())[1]
    assert "784" in _alt(cell) and "20 numbers" in _alt(cell)


def test_reparameterization_graph_in_notebook_3_has_the_packages_alt_text():
    cell = _cell_calling("03_reparameterization.ipynb", "diagrams.reparameterization_graph(")
    assert _alt(cell) == diagrams.reparameterization_graph()[1]


def test_the_graph_comes_where_notebook_3_introduces_the_trick():
    cells = _cells("03_reparameterization.ipynb")
    graph = next(i for i, c in enumerate(cells) if "diagrams.reparameterization_graph(" in c.source)
    heading = next(i for i, c in enumerate(cells) if c.source.lstrip().startswith("*What to notice:*")
                   and "## 2. The trick, written out" in c.source)
    function = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "def reparameterize(" in c.source)
    assert heading < graph < function


def _notebook_2_toy():
    """Notebook 2's toy model and data point (its section 5), and its guesses drawn in the identity picture."""
    toy = LinearGaussian.random(d=5, k=2, sigma=0.5, seed=28)
    x, _ = toy.sample(1, generator=torch.Generator().manual_seed(1))
    mean, cov = toy.posterior(x)
    guesses = [(mean + torch.tensor([[1.0, -1.0]], dtype=torch.float64), cov),  # mean off by (1, -1)
               (mean, torch.diag(cov.diagonal())),                             # no correlation
               (mean, 0.25 * cov),                                             # half the std
               (mean, cov)]                                                    # the exact posterior
    return toy, x, guesses


def test_notebook_2_uses_the_toy_model_these_tests_rebuild():
    sources = "\n".join(c.source for c in _cells("02_latent_variables_elbo.ipynb"))
    assert "LinearGaussian.random(d=5, k=2, sigma=0.5, seed=28)" in sources
    assert "toy.sample(1, generator=torch.Generator().manual_seed(1))" in sources
    cell = _cell_calling("02_latent_variables_elbo.ipynb", "diagrams.elbo_identity(")
    for name in ("right spread, mean off by (1,-1)", "right mean, no correlation", "right mean, half the std",
                 "the exact posterior"):
        assert f'"{name}"' in cell.source


def test_elbo_identity_in_notebook_2_has_the_packages_alt_text():
    toy, x, guesses = _notebook_2_toy()
    labels = ["mean off by (1,-1)", "no correlation", "half the std", "exact posterior"]
    _, alt = diagrams.elbo_identity(toy.log_marginal(x).item(), [toy.elbo(x, *q).item() for q in guesses],
                                    [toy.gap(x, *q).item() for q in guesses], labels=labels)
    cell = _cell_calling("02_latent_variables_elbo.ipynb", "diagrams.elbo_identity(")
    assert _alt(cell) == alt
    assert "ELBO" in alt and "exact posterior: ELBO" in alt


def test_posterior_ellipses_in_notebook_2_have_the_packages_alt_text():
    toy, x, _ = _notebook_2_toy()
    _, alt, numbers = diagrams.posterior_ellipses(toy, x)
    cell = _cell_calling("02_latent_variables_elbo.ipynb", "diagrams.posterior_ellipses(")
    assert _alt(cell) == alt
    assert bool((numbers["q_var"] < numbers["true_var"]).all())  # the picture's point: q is too narrow


def test_the_ellipses_come_after_the_mean_field_optimisation_with_the_reason_why():
    cells = _cells("02_latent_variables_elbo.ipynb")
    optimise = next(i for i, c in enumerate(cells) if "torch.optim.LBFGS" in c.source)
    ellipses = next(i for i, c in enumerate(cells) if "diagrams.posterior_ellipses(" in c.source)
    why = cells[ellipses + 1]
    assert optimise < ellipses
    assert why.cell_type == "markdown" and "too narrow" in why.source and "conditional" in why.source


@pytest.mark.parametrize("name", ["02_latent_variables_elbo.ipynb", "03_reparameterization.ipynb",
                                  "05_full_vae.ipynb"])
def test_every_diagram_cell_has_alt_text_and_shows_its_figure(name):
    cells = [c for c in _cells(name) if c.cell_type == "code" and "diagrams." in c.source]
    assert cells, f"{name}: no diagram"
    for cell in cells:
        assert _alt(cell), f"{name}: a diagram needs metadata.mystnb.image.alt"
        assert "plt.show()" in cell.source
