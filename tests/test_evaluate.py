"""Evaluation (ELBO, IWAE), figures, and pretrained-model caching."""
from __future__ import annotations

import math

import matplotlib.figure
import pytest
import torch

from vae_course import evaluate, interpolation, plots
from vae_course.models import CVAE, VAE, Autoencoder


@pytest.fixture(scope="module")
def model_and_x():
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((12, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(1))
    return VAE(latent_dim=3, hidden_dim=32), x


def test_per_example_terms_and_evaluate_elbo(model_and_x):
    model, x = model_and_x
    recon, kl = evaluate.per_example_terms(model, x, batch_size=5)
    assert recon.shape == kl.shape == (12,) and (recon > 0).all() and (kl >= 0).all()
    r2, k2 = evaluate.per_example_terms(model, x, batch_size=5)  # its own seeded noise: reproducible
    assert torch.equal(recon, r2) and torch.equal(kl, k2)
    out = evaluate.evaluate_elbo(model, x, beta=2.0)
    assert math.isclose(out["loss"], out["recon"] + 2 * out["kl"], rel_tol=1e-6)
    assert math.isclose(out["elbo"], -(out["recon"] + out["kl"]), rel_tol=1e-6)
    assert out["elbo_stderr"] > 0
    assert model.training  # evaluation restores the mode it found


def test_autoencoder_has_zero_kl(model_and_x):
    _, x = model_and_x
    recon, kl = evaluate.per_example_terms(Autoencoder(latent_dim=2, hidden_dim=8), x)
    assert torch.equal(kl, torch.zeros(12)) and (recon > 0).all()


def test_log_importance_weights_match_a_direct_computation(model_and_x):
    """log w = log p(x|z) + log p(z) - log q(z|x), recomputed with torch.distributions."""
    from torch.distributions import Bernoulli, Normal

    model, x = model_and_x
    model.eval()
    with torch.no_grad():
        lw = evaluate.log_importance_weights(model, x[:2], k=4, generator=torch.Generator().manual_seed(3))
        assert lw.shape == (2, 4) and lw.dtype == torch.float32
        mu, logvar = model.encode(x[:2])
        std = (0.5 * logvar).exp()
        eps = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(3))
        z = mu[:, None] + std[:, None] * eps
        logits = model.decode(z.reshape(8, 3)).view(2, 4, -1)
        expected = (Bernoulli(logits=logits).log_prob(x[:2].view(2, 1, -1)).sum(-1)
                    + Normal(0.0, 1.0).log_prob(z).sum(-1) - Normal(mu[:, None], std[:, None]).log_prob(z).sum(-1))
    torch.testing.assert_close(lw, expected, rtol=1e-4, atol=1e-2)
    model.train()


def test_iwae_nll_is_below_the_elbo_bound_and_reproducible(model_and_x):
    model, x = model_and_x
    elbo = evaluate.evaluate_elbo(model, x)
    iw = evaluate.iwae_nll(model, x, k=64, samples_per_pass=100, progress=False)
    assert iw["k"] == 64 and iw["n"] == 12
    assert iw["nll"] < -elbo["elbo"] + 3 * elbo["elbo_stderr"]
    again = evaluate.iwae_nll(model, x, k=64, samples_per_pass=1000, progress=False)
    assert math.isclose(iw["nll"], again["nll"], rel_tol=1e-3)  # chunking changes little
    with pytest.raises(ValueError, match="k"):
        evaluate.iwae_nll(model, x, k=0)
    with pytest.raises(TypeError, match="model"):
        evaluate.iwae_nll(Autoencoder(), x, k=2)


def test_cvae_evaluation_uses_labels():
    torch.manual_seed(0)
    model, x, y = CVAE(latent_dim=2, hidden_dim=16), torch.rand(6, 1, 28, 28), torch.arange(6)
    assert math.isfinite(evaluate.evaluate_elbo(model, x, y)["elbo"])
    assert math.isfinite(evaluate.iwae_nll(model, x, y, k=8, progress=False)["nll"])


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


def test_pretrained_is_trained_once_then_cached(monkeypatch, tmp_path):
    from course_testing import data_available

    if not data_available("MNIST"):
        pytest.skip("MNIST files not found")
    from vae_course import pretrained as pt

    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path))
    folder = pt.pretrained_dir("vae-2d", limit_train=300, limit_test=100)
    assert folder.parent == tmp_path / "pretrained" and folder.name.startswith("vae-2d-")
    model = pt.pretrained("vae-2d", verbose=False, limit_train=300, limit_test=100)
    assert model.latent_dim == 2 and not model.training
    assert (folder / "checkpoint.pt").is_file()
    monkeypatch.setattr(pt.Trainer, "fit", lambda self: pytest.fail("retrained a cached model"))
    again = pt.pretrained("vae-2d", verbose=False, limit_train=300, limit_test=100)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert len(pt.pretrained_history("vae-2d", limit_train=300, limit_test=100)) == 1
    # a different setting is a different cache entry; smoke and full mode never share one
    assert pt.pretrained_dir("vae-2d", limit_train=301, limit_test=100) != folder
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    assert pt.pretrained_dir("vae-2d", limit_train=300, limit_test=100) != folder
    with pytest.raises(ValueError, match="name"):
        pt.pretrained("gan")
