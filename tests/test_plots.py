"""plots: the figures the notebooks draw (vae_course.plots)."""
from __future__ import annotations

import matplotlib.figure
import pytest
import torch

from vae_course import interpolation, plots
from vae_course.models import Autoencoder


def test_plots_return_figures(model_and_x, tmp_path):
    import matplotlib.pyplot as plt

    model, x = model_and_x
    assert isinstance(plots.image_grid(x, nrow=4, title="t"), matplotlib.figure.Figure)
    assert plots.save_grid(x, tmp_path / "g.png").stat().st_size > 0
    assert plots.reconstruction_pairs(x[:8], x[:8], per_row=4).shape == (16, 1, 28, 28)
    assert plots.reconstruct(model, x).shape == x.shape
    assert isinstance(plots.show_reconstructions(model, x[:8]), matplotlib.figure.Figure)
    assert isinstance(plots.latent_scatter(torch.randn(30, 2), torch.arange(30) % 10), matplotlib.figure.Figure)
    with pytest.raises(ValueError, match="z"):
        plots.latent_scatter(torch.randn(30, 3), torch.arange(30) % 10)
    assert isinstance(plots.latent_manifold(model, n=4), matplotlib.figure.Figure)
    history = [{"epoch": 1, "loss": 3.0, "recon": 2.0, "kl": 1.0, "test_loss": 3.1},
               {"epoch": 2, "loss": 2.0, "recon": 1.5, "kl": 0.5, "test_loss": 2.2}]
    assert isinstance(plots.loss_curves(history), matplotlib.figure.Figure)
    z0, z1 = torch.randn(3), torch.randn(3)
    path = interpolation.slerp(z0, z1, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], z0) and torch.testing.assert_close(path[-1], z1)
    assert plots.interpolate(model, z0, z1, steps=5, spherical=True).shape == (5, 1, 28, 28)
    assert len(plots.CLASS_COLORS) == 10
    plt.close("all")


# ------------------------------------------------------- plots.latent_grid
def test_latent_grid_places_each_image_at_its_code():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vae_course import plots

    torch.manual_seed(0)
    model = Autoencoder(latent_dim=2)
    fig = plots.latent_grid(model, (-3.0, 1.0), (2.0, 5.0), n=4, title="t")
    image = fig.axes[0].images[0]
    assert image.get_extent() == [-3.0, 2.0, 1.0, 5.0]
    pixels = torch.as_tensor(image.get_array())
    assert pixels.shape == (4 * 28, 4 * 28)
    # Top-left cell: the smallest z1 and the largest z2, at the cell's centre.
    z = torch.tensor([[-3.0 + 0.5 * 5 / 4, 5.0 - 0.5 * 4 / 4]])
    with torch.no_grad():
        want = torch.sigmoid(model.decode(z))[0, 0]
    assert torch.allclose(pixels[:28, :28].float(), want, atol=1e-6)
    with pytest.raises(ValueError, match="below"):
        plots.latent_grid(model, (1.0, 0.0), (0.0, 1.0))
    plt.close("all")


# ------------------------------------------------------- one style for the course
def test_importing_plots_applies_the_course_style():
    """A fresh interpreter: importing vae_course.plots (or diagrams) is enough to set every rcParam."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
            "default = plt.rcParams['legend.fontsize']\n"
            "from vae_course import plots\n"
            "valid = matplotlib.rcParams.validate\n"
            "bad = [k for k, v in plots.COURSE_STYLE.items() if plt.rcParams[k] != valid[k](v)]\n"
            "print(default, bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["medium", "[]"]  # matplotlib's own default before, the course's after


def test_course_style_context_restores_what_was_there():
    import matplotlib.pyplot as plt

    with plt.rc_context({"legend.fontsize": 6}):
        with plots.course_style():
            assert plt.rcParams["legend.fontsize"] == plots.COURSE_STYLE["legend.fontsize"]
        assert plt.rcParams["legend.fontsize"] == 6


def _visible_ticks(axis) -> list[float]:
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_ticklocs() if lo - 1e-9 <= t <= hi + 1e-9]


@pytest.mark.parametrize("epochs", [2, 3, 7, 10, 60])
def test_an_epoch_axis_has_only_whole_number_ticks(epochs):
    """Notebook 1's 3-epoch curve had ticks at 1.25 and 1.75 before the epoch axis was fixed."""
    import matplotlib.pyplot as plt

    history = [{"epoch": e, "recon": 180.0 - 8 * e, "test_recon": 170.0 - 5 * e} for e in range(1, epochs + 1)]
    fig = plots.loss_curves(history, keys=("recon", "test_recon"))
    fig.canvas.draw()
    ticks = _visible_ticks(fig.axes[0].xaxis)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    assert fig.axes[0].get_xlabel() == "epoch"
    plt.close(fig)


def test_readable_fontsize_follows_the_figure_width():
    # A figure that fits the column is shown at its own size: 9 px at 80 dpi is 8.1 pt.
    assert plots.readable_fontsize(6.0) == pytest.approx(plots.MIN_TEXT_PX * 72 / plots.DPI)
    # One twice as wide as the column is halved on screen: its text must be twice as large.
    wide = 2 * plots.BOOK_COLUMN_PX / plots.DPI
    assert plots.readable_fontsize(wide) == pytest.approx(2 * plots.MIN_TEXT_PX * 72 / plots.DPI)
    # The widest figure whose smallest style text is readable is exactly that.
    assert plots.readable_fontsize(plots.MAX_FIGURE_WIDTH_IN) == pytest.approx(plots.SMALLEST_FONT_PT)


def _package_figures(model_and_x):
    model, x = model_and_x
    history = [{"epoch": e, "loss": 200.0 / e, "recon": 180.0 / e, "kl": 5.0 + e, "test_loss": 190.0 / e}
               for e in range(1, 6)]
    yield "loss_curves", plots.loss_curves(history)
    yield "latent_scatter", plots.latent_scatter(torch.randn(50, 2), torch.arange(50) % 10)
    yield "latent_grid", plots.latent_grid(model, (-2.0, -2.0), (2.0, 2.0), n=4)
    yield "image_grid", plots.image_grid(x[:16], nrow=16, title="Sixteen images")
    yield "show_reconstructions", plots.show_reconstructions(model, x[:8], per_row=8)


def test_every_package_figure_is_readable_in_the_book_and_one_panel_on_a_phone(model_and_x):
    """Legends, ticks, labels and titles, in points, are at least the floor for the figure's width:
    9 px on screen in the 752 px book column; one-panel figures also in a 390 px phone column."""
    import matplotlib.pyplot as plt

    for name, fig in _package_figures(model_and_x):
        assert plots.small_text(fig) == [], name
        if fig.get_figwidth() <= plots.COURSE_STYLE["figure.figsize"][0]:  # one panel at the default width
            assert plots.small_text(fig, plots.PHONE_COLUMN_PX) == [], name
        legend = fig.axes[0].get_legend()
        if legend is not None:
            for text in legend.get_texts():
                assert text.get_fontsize() >= plots.readable_fontsize(fig.get_figwidth()), name
        plt.close(fig)


def test_small_text_finds_text_too_small_for_its_figure():
    """The readability check itself can fail: 7 pt on a 6 in figure, or 10 pt on a 15 in one."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [0, 1], label="tiny")
    ax.legend(fontsize=7)
    assert ("tiny", 7.0) in plots.small_text(fig)
    wide, ax = plt.subplots(figsize=(15, 4))
    ax.set_title("ten points", fontsize=10)
    assert ("ten points", 10.0) in plots.small_text(wide)
    plt.close("all")


def test_the_loss_legend_covers_no_data_point():
    """The legend sits where matplotlib finds no curve ('best'), and its frame is not opaque."""
    import matplotlib.pyplot as plt

    history = [{"epoch": e, "loss": 165 - 60 * (1 - 0.6 ** e), "recon": 150 - 70 * (1 - 0.6 ** e),
                "test_loss": 128 - 22 * (1 - 0.6 ** e), "test_recon": 107 - 27 * (1 - 0.6 ** e)} for e in range(1, 11)]
    fig = plots.loss_curves(history, keys=("loss", "recon", "test_loss", "test_recon"))
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_legend().get_window_extent()
    for line in ax.get_lines():
        points = ax.transData.transform(line.get_xydata())
        assert not any(box.contains(px, py) for px, py in points), line.get_label()
    assert ax.get_legend().get_frame().get_alpha() == plots.COURSE_STYLE["legend.framealpha"]
    plt.close(fig)
