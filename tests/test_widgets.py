"""widgets: the KL explorer of notebook 4 and the latent explorer of notebook 7 (vae_course.widgets)."""
import io
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vae_course.losses import kl_divergence  # noqa: E402
from vae_course.models import VAE, ConvVAE, CVAE  # noqa: E402
from vae_course.widgets import LatentExplorer, kl_densities_figure, kl_explorer, latent_explorer  # noqa: E402


# ------------------------------------------------------------ KL explorer
def shown_kl(box) -> float:
    match = re.search(r"=\s*([-0-9.]+)\s*nats", box.kl_label.value)
    assert match, box.kl_label.value
    return float(match.group(1))


def reference(mu: float, logvar: float) -> float:
    return kl_divergence(torch.tensor([[mu]]), torch.tensor([[logvar]])).item()


def test_initial_value_and_slider_changes():
    box = kl_explorer()
    assert shown_kl(box) == pytest.approx(reference(1.0, -1.0), abs=1e-4)
    for mu, logvar in ((0.0, 0.0), (2.0, 1.0), (-1.5, -3.0)):
        box.mu_slider.value = mu
        box.logvar_slider.value = logvar
        assert shown_kl(box) == pytest.approx(reference(mu, logvar), abs=1e-4)
    box.mu_slider.value, box.logvar_slider.value = 0.0, 0.0
    assert shown_kl(box) == pytest.approx(0.0, abs=1e-6)  # q = prior


def test_static_figure_title():
    fig = kl_densities_figure(1.0, -1.0)
    title = fig.axes[0].get_title()
    assert f"{reference(1.0, -1.0):.3f}" in title


# ------------------------------------------------------------ latent explorer
def shown_pixels(explorer: LatentExplorer) -> np.ndarray:
    """The 28 x 28 grey levels the widget displays (decoded from its PNG)."""
    big = np.array(Image.open(io.BytesIO(explorer.image.value)))
    assert big.shape == (28 * explorer.scale, 28 * explorer.scale)
    return big[:: explorer.scale, :: explorer.scale]


def expected_pixels(model, z: torch.Tensor, y=None) -> np.ndarray:
    with torch.no_grad():
        p = torch.sigmoid(model.decode(z[None], y))[0, 0]
    return (p * 255).round().to(torch.uint8).numpy()


def test_explorer_2d_sliders_redraw_the_decoded_digit():
    torch.manual_seed(0)
    model = VAE(latent_dim=2).eval()
    ex = latent_explorer(model)
    assert isinstance(ex, LatentExplorer) and ex.dims_dropdown is None
    assert len(ex.sliders) == 2
    np.testing.assert_array_equal(shown_pixels(ex), expected_pixels(model, torch.zeros(2)))
    before = ex.image.value
    ex.sliders[0].value = 1.5
    ex.sliders[1].value = -2.25
    torch.testing.assert_close(ex.z, torch.tensor([1.5, -2.25]))
    assert ex.image.value != before
    np.testing.assert_array_equal(shown_pixels(ex), expected_pixels(model, torch.tensor([1.5, -2.25])))
    torch.testing.assert_close(ex.decoded(), torch.sigmoid(model.decode(ex.z[None]))[0, 0].detach())
    assert "1.50" in ex.readout.value and "-2.25" in ex.readout.value


def test_explorer_dropdown_picks_dimensions_and_keeps_the_code():
    torch.manual_seed(1)
    model = VAE(latent_dim=5).eval()
    ex = latent_explorer(model)
    assert ex.dims_dropdown is not None and len(ex.dims_dropdown.options) == 10  # 5 choose 2
    ex.sliders[0].value = 1.0  # z1
    ex.dims_dropdown.value = (2, 4)  # now the sliders move z3 and z5
    assert [s.description for s in ex.sliders] == ["z3", "z5"]
    ex.sliders[1].value = -0.5
    torch.testing.assert_close(ex.z, torch.tensor([1.0, 0.0, 0.0, 0.0, -0.5]))
    np.testing.assert_array_equal(shown_pixels(ex), expected_pixels(model, ex.z))
    ex.dims_dropdown.value = (0, 1)  # back: slider 1 shows z1's value again
    assert ex.sliders[0].value == pytest.approx(1.0)
    torch.testing.assert_close(ex.z, torch.tensor([1.0, 0.0, 0.0, 0.0, -0.5]))


def test_explorer_starts_from_a_given_code_and_draws_a_cvae_digit():
    torch.manual_seed(2)
    model = CVAE(latent_dim=3).eval()
    z0 = torch.tensor([0.5, -1.0, 2.0])
    ex = latent_explorer(model, z0=z0, y=7, dims=(1, 2))
    assert [s.value for s in ex.sliders] == pytest.approx([-1.0, 2.0])
    np.testing.assert_array_equal(shown_pixels(ex), expected_pixels(model, z0, torch.tensor([7])))
    with pytest.raises(ValueError, match="conditional"):
        latent_explorer(model)


def test_explorer_conv_vae_and_bad_arguments():
    model = ConvVAE(latent_dim=4).eval()
    ex = latent_explorer(model, scale=3)
    ex.sliders[1].value = 0.75
    np.testing.assert_array_equal(shown_pixels(ex), expected_pixels(model, torch.tensor([0.0, 0.75, 0.0, 0.0])))
    with pytest.raises(ValueError):
        latent_explorer(model, dims=(1, 1))
    with pytest.raises(ValueError):
        latent_explorer(model, z0=torch.zeros(3))
    with pytest.raises(ValueError):
        latent_explorer(model, extent=0)


def test_explorer_one_dimensional_model_has_one_slider():
    ex = latent_explorer(VAE(latent_dim=1).eval())
    assert len(ex.sliders) == 1 and ex.dims_dropdown is None

