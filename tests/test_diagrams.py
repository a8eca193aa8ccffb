"""Tests of vae_course.diagrams: figures built headless, the numbers they draw checked."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vae_course import diagrams  # noqa: E402
from vae_course.models import CVAE, VAE, Autoencoder  # noqa: E402
from vae_course.toy_models import LinearGaussian  # noqa: E402


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.fixture
def toy_and_x():
    """Notebook 2's toy model and data point."""
    toy = LinearGaussian.random(d=5, k=2, sigma=0.5, seed=28)
    x, _ = toy.sample(1, generator=torch.Generator().manual_seed(1))
    return toy, x


def test_architecture_reads_its_shapes_from_the_model():
    fig, alt = diagrams.vae_architecture()  # the seed's VAE
    text = _texts(fig)
    assert "(784)" in text and "(400)" in text and "(20)" in text and "(2)" not in text
    assert "784 pixels" in alt and "20 numbers" in alt
    plt.close(fig)
    fig, alt = diagrams.vae_architecture(VAE(latent_dim=2, hidden_dim=64))
    text = _texts(fig)
    assert "(2)" in text and "(64)" in text and "(20)" not in text and "(400)" not in text
    assert "2 numbers" in alt and "64 hidden units" in alt
    plt.close(fig)


@pytest.mark.parametrize("model", [Autoencoder(), CVAE()])
def test_architecture_refuses_models_it_cannot_draw(model):
    with pytest.raises(TypeError, match="MLP VAE"):
        diagrams.vae_architecture(model)


def test_reparameterization_graph_has_two_panels_and_a_blocked_arrow():
    fig, alt = diagrams.reparameterization_graph()
    assert len(fig.axes) == 2
    before, after = fig.axes
    blocked = [line for line in before.lines if line.get_marker() == "X"]
    assert len(blocked) == 2 and not [line for line in after.lines if line.get_marker() == "X"]
    assert "blocked" in _texts(fig) and "crossed out" in alt and "gradient" in alt
    plt.close(fig)


def test_elbo_identity_draws_the_given_numbers(toy_and_x):
    toy, x = toy_and_x
    m, S = toy.posterior(x)
    cases = [(torch.zeros(1, 2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)), (m, S)]
    elbos = [toy.elbo(x, *c).item() for c in cases]
    gaps = [toy.gap(x, *c).item() for c in cases]
    log_px = toy.log_marginal(x).item()
    fig, alt = diagrams.elbo_identity(log_px, elbos, gaps, labels=["prior", "posterior"])
    ax = fig.axes[0]
    bars = ax.patches
    # ELBO bars end at the ELBOs; gap bars stack on them and end at log p(x).
    tops = sorted(round(p.get_y() + p.get_height(), 9) for p in bars)
    assert tops == pytest.approx(sorted([*elbos, log_px, log_px]), abs=1e-9)
    assert f"{log_px:.3f}" in alt and "prior" in alt
    plt.close(fig)


def test_elbo_identity_refuses_numbers_that_break_it():
    with pytest.raises(ValueError, match="break the identity"):
        diagrams.elbo_identity(-5.0, -6.0, 0.5)
    with pytest.raises(ValueError, match="cannot be negative"):
        diagrams.elbo_identity(-5.0, -4.0, -1.0)
    with pytest.raises(ValueError, match="one gap per ELBO"):
        diagrams.elbo_identity(-5.0, [-6.0, -7.0], [1.0])


def test_mean_field_q_has_the_precision_diagonal_and_is_too_narrow(toy_and_x):
    toy, x = toy_and_x
    fig, alt, n = diagrams.posterior_ellipses(toy, x)
    _, post_cov = toy.posterior(x)
    precision = torch.linalg.inv(post_cov)
    assert torch.allclose(n["q_var"], 1 / precision.diagonal())
    assert torch.allclose(n["true_var"], post_cov.diagonal())
    assert torch.all(n["q_var"] < n["true_var"])
    rho = n["correlation"]
    assert rho.item() == pytest.approx(-0.80, abs=0.01)  # notebook 2's printed correlation
    assert torch.allclose(n["variance_ratio"], (1 - rho**2).expand(2))  # in 2-D: 1 - rho^2 for both
    assert (n["log_px"] - n["elbo"]).item() == pytest.approx(n["gap"].item(), abs=1e-10)
    # The gap of the best mean-field q in closed form (Bishop 10.1.2).
    assert n["gap"].item() == pytest.approx(0.5 * (precision.diagonal().log().sum() - precision.logdet()).item())
    assert len(fig.axes[0].patches) == 4  # 1- and 2-sigma ellipses, for both Gaussians
    assert f"{n['gap'].item():.3f}" in alt
    plt.close(fig)


def test_mean_field_q_is_the_best_diagonal_q(toy_and_x):
    toy, x = toy_and_x
    n = diagrams.mean_field_q(toy, x)
    mean = n["mean"][None]
    best = toy.elbo(x, mean, torch.diag(n["q_var"])).item()
    for scale in ((1.1, 1.0), (0.9, 1.0), (1.0, 1.2)):
        other = torch.diag(n["q_var"] * torch.tensor(scale, dtype=torch.float64))
        assert toy.elbo(x, mean, other).item() < best


def test_posterior_ellipse_ellipses_sit_on_the_contours(toy_and_x):
    toy, x = toy_and_x
    n = diagrams.mean_field_q(toy, x)
    ell = diagrams._ellipse(n["mean"], n["post_cov"], 2.0)
    # The on-curve points of the drawn ellipse (every third vertex of its cubic Bezier path;
    # the others are control points) are at Mahalanobis distance 2 from the mean.
    vertices = ell.get_path().vertices[:-1:3]
    pts = torch.as_tensor(ell.get_patch_transform().transform(vertices), dtype=torch.float64)
    diff = pts - n["mean"]
    maha = (diff @ n["precision"] * diff).sum(1).sqrt()
    assert torch.allclose(maha, torch.full_like(maha, 2.0), atol=1e-6)


def test_posterior_ellipses_needs_two_latent_dimensions():
    toy = LinearGaussian.random(d=5, k=3, seed=0)
    with pytest.raises(ValueError, match="2-D latent space"):
        diagrams.posterior_ellipses(toy, torch.zeros(5))


# ------------------------------------------------------- readable where the book shows them
def _diagrams(toy, x):
    m, S = toy.posterior(x)
    yield diagrams.vae_architecture()[0]
    yield diagrams.reparameterization_graph()[0]
    yield diagrams.elbo_identity(toy.log_marginal(x).item(), [toy.elbo(x, m, S).item()], [0.0])[0]
    yield diagrams.posterior_ellipses(toy, x)[0]


def test_every_diagram_text_is_readable_in_the_book_column(toy_and_x):
    """Each diagram's smallest text stays 9 px tall once the figure is scaled to the book's column
    (the architecture used to be 14 in wide with 8.5 pt labels: about 6 px on screen)."""
    from vae_course import plots

    for fig in _diagrams(*toy_and_x):
        assert fig.get_figwidth() <= plots.MAX_FIGURE_WIDTH_IN
        assert plots.small_text(fig) == [], fig.axes[0].get_title()
        plt.close(fig)


def test_the_one_panel_diagram_is_readable_on_a_phone(toy_and_x):
    from vae_course import plots

    fig = diagrams.posterior_ellipses(*toy_and_x)[0]
    assert plots.small_text(fig, plots.PHONE_COLUMN_PX) == []
    plt.close(fig)
