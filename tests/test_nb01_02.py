"""Checks used by notebooks 1 and 2: the right answer passes, ``None`` means "not
attempted", and every wrong variant a check claims to recognise gets its hint."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vae_course import checks, losses
from vae_course.models import Autoencoder
from vae_course.toy_models import diag_gaussian_log_density


def verdict(capsys, check, fn):
    result = check(fn)
    return result, capsys.readouterr().out


def assert_recognised(capsys, check, fn, variant_name):
    result, out = verdict(capsys, check, fn)
    assert result is False, out
    assert f"Hint ({variant_name})" in out, out


# ------------------------------------------------------------ squared error
def squared_error(x_hat, x):
    return (x - x_hat).pow(2).flatten(1).sum(1)


def test_squared_error_right_and_not_attempted(capsys):
    assert verdict(capsys, checks.check_squared_error, squared_error)[0] is True
    assert verdict(capsys, checks.check_squared_error, lambda xh, x: F.mse_loss(xh, x, reduction="none").sum((1, 2, 3)))[0]
    result, out = verdict(capsys, checks.check_squared_error, None)
    assert result is None and "not attempted" in out
    assert verdict(capsys, checks.check_squared_error, lambda xh, x: None)[0] is None


@pytest.mark.parametrize("name, fn", [
    ("mean over pixels", lambda xh, x: squared_error(xh, x) / 784),
    ("one number for the whole batch", lambda xh, x: squared_error(xh, x).sum()),
    ("F.mse_loss with its default reduction", lambda xh, x: F.mse_loss(xh, x)),
    ("absolute error", lambda xh, x: (x - xh).abs().flatten(1).sum(1)),
    ("norm instead of squared norm", lambda xh, x: (x - xh).flatten(1).norm(dim=1)),
])
def test_squared_error_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_squared_error, fn, name)


# ---------------------------------------------------------- encoder forward
def encoder_forward(x, w1, b1, w2, b2):
    h = torch.relu(x.flatten(1) @ w1.T + b1)
    return h @ w2.T + b2


def test_encoder_forward_right(capsys):
    assert verdict(capsys, checks.check_encoder_forward, encoder_forward)[0] is True
    assert verdict(capsys, checks.check_encoder_forward,
                   lambda x, w1, b1, w2, b2: F.linear(F.relu(F.linear(x.flatten(1), w1, b1)), w2, b2))[0]


@pytest.mark.parametrize("name, fn", [
    ("no ReLU", lambda x, w1, b1, w2, b2: F.linear(F.linear(x.flatten(1), w1, b1), w2, b2)),
    ("ReLU on the code too", lambda x, w1, b1, w2, b2: torch.relu(encoder_forward(x, w1, b1, w2, b2))),
    ("sigmoid instead of ReLU", lambda x, w1, b1, w2, b2: torch.sigmoid(x.flatten(1) @ w1.T + b1) @ w2.T + b2),
    ("biases forgotten", lambda x, w1, b1, w2, b2: torch.relu(x.flatten(1) @ w1.T) @ w2.T),
])
def test_encoder_forward_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_encoder_forward, fn, name)


def test_encoder_forward_reference_is_the_package_encoder():
    """The function the exercise asks for is exactly ``Autoencoder.encode``."""
    torch.manual_seed(0)
    model = Autoencoder(latent_dim=2)
    x = torch.rand(4, 1, 28, 28)
    lin1, lin2 = model.encoder[1], model.encoder[3]
    z = encoder_forward(x, lin1.weight, lin1.bias, lin2.weight, lin2.bias)
    assert torch.allclose(z, model.encode(x), atol=1e-6)


def test_autoencoder_parameter_count():
    """Notebook 1 prints this count: 784·400+400 + 400·2+2 (encoder) + 2·400+400 + 400·784+784 (decoder)."""
    model = Autoencoder(latent_dim=2)
    assert sum(p.numel() for p in model.parameters()) == 2 * 784 * 400 + 400 + 784 + 2 * (2 * 400) + 400 + 2


# ------------------------------------------------------ Gaussian log-density
def log_density(z, mu, logvar):
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def test_gaussian_log_density_right(capsys):
    assert verdict(capsys, checks.check_gaussian_log_density, log_density)[0] is True
    normal = lambda z, m, lv: torch.distributions.Normal(m, (0.5 * lv).exp()).log_prob(z).sum(-1)  # noqa: E731
    assert verdict(capsys, checks.check_gaussian_log_density, normal)[0] is True


@pytest.mark.parametrize("name, fn", [
    ("missing the log(2 pi) constant", lambda z, m, lv: -0.5 * (lv + (z - m).pow(2) / lv.exp()).sum(-1)),
    ("divided by sigma instead of sigma^2",
     lambda z, m, lv: -0.5 * (math.log(2 * math.pi) + lv + (z - m).pow(2) / (0.5 * lv).exp()).sum(-1)),
    ("missing the log-variance term",
     lambda z, m, lv: -0.5 * (math.log(2 * math.pi) + (z - m).pow(2) / lv.exp()).sum(-1)),
    ("negative log-density", lambda z, m, lv: -log_density(z, m, lv)),
    ("mean over dimensions", lambda z, m, lv: log_density(z, m, lv) / z.shape[-1]),
    ("missing 1/2", lambda z, m, lv: -(math.log(2 * math.pi) + lv + (z - m).pow(2) / lv.exp()).sum(-1)),
])
def test_gaussian_log_density_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_gaussian_log_density, fn, name)


def test_diag_density_equals_full_density_with_diagonal_cov():
    from vae_course.toy_models import gaussian_log_density
    g = torch.Generator().manual_seed(0)
    z, mu, lv = (torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    full = gaussian_log_density(z, mu, torch.diag_embed(lv.exp()))
    assert torch.allclose(diag_gaussian_log_density(z, mu, lv), full, atol=1e-10)


# ------------------------------------------------------------ the toy ELBO
def toy_elbo(model, x, q_mu, q_logvar):
    var = q_logvar.exp()
    sq = (x - q_mu @ model.W.T - model.b).pow(2).sum(-1)
    spread = (var * model.W.pow(2).sum(0)).sum(-1)  # tr(W S W^T) for diagonal S
    s2 = model.sigma**2
    recon = -0.5 * ((sq + spread) / s2 + model.d * math.log(2 * math.pi * s2))
    return recon - losses.kl_divergence(q_mu, q_logvar)


def test_toy_elbo_right(capsys):
    assert verdict(capsys, checks.check_toy_elbo, toy_elbo)[0] is True
    assert verdict(capsys, checks.check_toy_elbo, None)[0] is None


def _recon(model, x, m, lv):
    return toy_elbo(model, x, m, lv) + losses.kl_divergence(m, lv)


def _sigma_as_variance(model, x, m, lv):
    sq = (x - m @ model.W.T - model.b).pow(2).sum(-1) + (lv.exp() * model.W.pow(2).sum(0)).sum(-1)
    recon = -0.5 * (sq / model.sigma + model.d * math.log(2 * math.pi * model.sigma))
    return recon - losses.kl_divergence(m, lv)


@pytest.mark.parametrize("name, fn", [
    ("spread of q forgotten", lambda mo, x, m, lv: mo.log_likelihood(x, m) - losses.kl_divergence(m, lv)),
    ("KL forgotten", _recon),
    ("KL added", lambda mo, x, m, lv: _recon(mo, x, m, lv) + losses.kl_divergence(m, lv)),
    ("sigma used as the variance", _sigma_as_variance),
])
def test_toy_elbo_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_toy_elbo, fn, name)


def test_unrecognised_wrong_answers_get_the_generic_hint(capsys):
    result, out = verdict(capsys, checks.check_squared_error, lambda xh, x: squared_error(xh, x) + 1)
    assert result is False and "term by term" in out
    result, out = verdict(capsys, checks.check_toy_elbo, lambda mo, x, m, lv: toy_elbo(mo, x, m, lv) * 1.5)
    assert result is False and "term by term" in out


def test_gradients_are_checked(capsys):
    result, out = verdict(capsys, checks.check_squared_error, lambda xh, x: squared_error(xh.detach(), x))
    assert result is False and "gradients" in out


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
