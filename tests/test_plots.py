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
