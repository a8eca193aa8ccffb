"""The diagrams in notebooks 2, 3 and 5 (issue 13, item 2): every one is drawn by
``vae_course.diagrams`` where its idea first appears, and the book gives it the
alt text the package writes for it.

The alt text lives in the cell's ``metadata.mystnb.image.alt`` (what the book's
extension and myst-nb read). It is generated from the package, so these tests
recompute it from the notebook's own inputs and fail when the diagram, its
wording or the notebook's numbers change without the metadata following.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import nbformat
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vae_course import diagrams, models  # noqa: E402
from vae_course.toy_models import LinearGaussian  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


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
