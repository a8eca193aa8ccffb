"""Tests of vae_course.uncertainty: the encoder's sigma on clean, corrupted and overlaid digits."""
import pytest
import torch

from vae_course import uncertainty as U
from vae_course.losses import kl_divergence
from vae_course.models import VAE


def test_overlay_pairs_mix_two_different_digits(mnist_small):
    x, y = mnist_small.test_x[:100], mnist_small.test_y[:100]
    over, partner = U.overlay_pairs(x, y)
    assert torch.all(y[partner] != y)
    assert torch.all(over >= x) and torch.all(over >= x[partner]) and over.shape == x.shape
    with pytest.raises(ValueError, match="two different classes"):
        U.overlay_pairs(x[:3], torch.zeros(3, dtype=torch.long))


def test_corrupted_versions(mnist_small):
    x, y = mnist_small.test_x[:50], mnist_small.test_y[:50]
    v = U.corrupted_versions(x, y)
    assert list(v) == ["clean", "noisy", "occluded", "overlaid"]
    assert torch.equal(v["clean"], x)
    changed = (v["noisy"] != x).float().mean().item()
    assert 0.05 < changed < 0.15  # about 10% of the pixels flipped
    assert torch.all(v["occluded"][..., 7:21, 7:21] == 0) and torch.equal(v["occluded"][..., :7, :], x[..., :7, :])


def test_posterior_spread_and_the_table():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden_dim=16)
    x = torch.rand(30, 1, 28, 28)
    mu, logvar = (t.detach() for t in model.encode(x))
    mask = torch.tensor([True, False, True, False])
    s = U.posterior_spread(model, x, mask)
    assert torch.allclose(s["std"], logvar[:, mask].mul(0.5).exp().mean(1), atol=1e-6)
    assert torch.allclose(s["kl"], kl_divergence(mu, logvar), atol=1e-5)
    with pytest.raises(ValueError, match="boolean mask"):
        U.posterior_spread(model, x, torch.zeros(4, dtype=torch.bool))
    # An untrained encoder's means barely move with the input: no active dimension, so all are used.
    assert mu.var(0).max() < 0.01
    assert U.uncertainty_table(model, {"clean": x})["clean"]["active_dims"] == 4
    with torch.no_grad():
        model.fc21.weight[[0, 2]] *= 100  # make dimensions 0 and 2 follow the input
    mu, _ = model.encode(x)
    active = mu.detach().var(0) > 0.01  # active on the first (clean) set
    assert active.tolist() == [True, False, True, False]
    table = U.uncertainty_table(model, {"clean": x, "dark": x * 0})
    assert set(table) == {"clean", "dark"}
    assert set(table["clean"]) == {"active_dims", "std", "std_se", "kl", "kl_se", "neg_elbo", "neg_elbo_se"}
    assert table["clean"]["active_dims"] == 2
    for name, images in (("clean", x), ("dark", x * 0)):
        expected = U.posterior_spread(model, images, active)
        assert table[name]["std"] == pytest.approx(expected["std"].double().mean().item(), rel=1e-5)
        assert table[name]["kl"] == pytest.approx(expected["kl"].double().mean().item(), rel=1e-5)
