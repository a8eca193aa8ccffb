"""Notebooks 1 and 2 beyond their exercise checks (those are in tests/checks/): the
autoencoder's parameter count, the diagonal Gaussian density, and ``plots.latent_grid``."""
import pytest
import torch

from vae_course.models import Autoencoder
from vae_course.toy_models import diag_gaussian_log_density


def test_autoencoder_parameter_count():
    """Notebook 1 prints this count: 784·400+400 + 400·2+2 (encoder) + 2·400+400 + 400·784+784 (decoder)."""
    model = Autoencoder(latent_dim=2)
    assert sum(p.numel() for p in model.parameters()) == 2 * 784 * 400 + 400 + 784 + 2 * (2 * 400) + 400 + 2


def test_diag_density_equals_full_density_with_diagonal_cov():
    from vae_course.toy_models import gaussian_log_density
    g = torch.Generator().manual_seed(0)
    z, mu, lv = (torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    full = gaussian_log_density(z, mu, torch.diag_embed(lv.exp()))
    assert torch.allclose(diag_gaussian_log_density(z, mu, lv), full, atol=1e-10)


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
