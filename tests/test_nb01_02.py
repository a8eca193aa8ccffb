"""Notebooks 1 and 2 beyond their exercise checks (those are in tests/checks/): the
autoencoder's parameter count, the diagonal Gaussian density, and notebook 1's inline recipe."""
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


# ------------------------------------- notebook 1's holes = vae_course.latent_metrics
def test_notebook_1s_inline_recipe_uses_the_package_defaults():
    """Notebook 1 checks its inline hole and between-cluster numbers against `latent_metrics` with the
    package's defaults, and notebook 7 reuses those defaults for the VAE: the settings must agree."""
    import inspect
    from pathlib import Path

    import nbformat

    from vae_course import latent_metrics

    path = Path(__file__).resolve().parents[1] / "notebooks" / "01_autoencoder.ipynb"
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    holes = inspect.signature(latent_metrics.hole_metrics).parameters
    between = inspect.signature(latent_metrics.between_cluster_metrics).parameters
    assert f"bins = {holes['bins'].default}\n" in code
    assert f"g = torch.Generator().manual_seed({holes['seed'].default})\n" in code
    assert f"[:{holes['n_reference'].default:_}]]" in code
    assert f"torch.rand({holes['n_random'].default}, 2, generator=g)" in code
    assert f"z_test[:{holes['n_random'].default}]" in code
    assert f"t = torch.linspace(0, 1, {between['steps'].default})" in code
    assert f"radius = {between['radius_fraction'].default} * (hi - lo).norm()" in code
    # ... and the notebook calls both functions with those defaults, asserting equal numbers.
    assert "latent_metrics.hole_metrics(z_train, z_test)" in code
    assert "latent_metrics.between_cluster_metrics(z_train, data.train_y)" in code
