"""Tests of vae_course.latent_metrics: notebook 1's holes and between-cluster numbers, for any model."""
import math

import pytest
import torch

from vae_course import latent_metrics as LM
from vae_course.models import VAE, Autoencoder
from vae_course.train import TrainConfig, Trainer


def _blobs(n: int = 400, centres=((-6.0, 0.0), (6.0, 0.0)), spread: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.cat([torch.tensor(c) + spread * torch.randn(n, 2, generator=g) for c in centres])
    y = torch.arange(len(centres)).repeat_interleave(n)
    return z, y


def test_empty_cell_fraction_counts_the_cells_without_codes():
    # Codes at the centres of the 450 cells of the left half of a 30 x 30 grid on [0, 1]^2,
    # plus the two corners that fix the box: 451 cells hold a code (the corner (1, 1) adds one).
    centres = (torch.arange(30) + 0.5) / 30
    left = torch.cartesian_prod(centres[:15], centres)
    z = torch.cat([torch.tensor([[0.0, 0.0], [1.0, 1.0]]), left])
    assert LM.empty_cell_fraction(z, bins=30) == pytest.approx((900 - 451) / 900)
    with pytest.raises(ValueError, match="2-D codes only"):
        LM.empty_cell_fraction(torch.zeros(10, 3))


def test_hole_metrics_match_notebook_1s_inline_recipe():
    z_train, _ = _blobs(3000)
    z_test, _ = _blobs(1000, seed=1)
    # Notebook 1's cell, verbatim in substance:
    g = torch.Generator().manual_seed(1)
    lo, hi = z_train.min(0).values, z_train.max(0).values
    reference = z_train[torch.randperm(len(z_train), generator=g)[:10_000]]
    z_uniform = lo + (hi - lo) * torch.rand(2000, 2, generator=g)
    nn_test = torch.cdist(z_test[:2000], reference).min(1).values
    nn_uniform = torch.cdist(z_uniform, reference).min(1).values
    m = LM.hole_metrics(z_train, z_test)
    assert m["median_test"] == pytest.approx(nn_test.median().item())
    assert m["median_random"] == pytest.approx(nn_uniform.median().item())
    assert m["far_fraction"] == pytest.approx((nn_uniform > nn_test.quantile(0.99)).float().mean().item())
    # Two tight blobs at the ends of a wide box: random codes land far from the data,
    # and only the columns of cells at the two ends hold codes.
    assert m["distance_ratio"] > 5 and m["far_fraction"] > 0.5 and m["empty_cells"] > 0.6


def test_hole_metrics_see_no_hole_when_random_codes_look_like_the_data():
    g = torch.Generator().manual_seed(0)
    z_train, z_test = torch.randn(5000, 2, generator=g), torch.randn(2000, 2, generator=g)
    m = LM.hole_metrics(z_train, z_test, how="prior")  # random codes from the codes' own distribution
    assert m["distance_ratio"] == pytest.approx(1.0, abs=0.15)
    assert m["far_fraction"] < 0.03
    m20 = LM.hole_metrics(torch.randn(3000, 20, generator=g), torch.randn(500, 20, generator=g), how="prior",
                          n_random=500)
    assert math.isnan(m20["empty_cells"]) and m20["distance_ratio"] == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="'box' or 'prior'"):
        LM.random_codes(z_train, 5, how="uniform")


def test_between_cluster_metrics_find_the_gap():
    z, y = _blobs()
    m = LM.between_cluster_metrics(z, y)
    assert m["pair"] == (0, 1) and m["counts"].shape == (10,) and m["path"].shape == (10, 2)
    assert m["counts"][0] > 100 and m["counts"][-1] > 100 and m["counts"][1:-1].min() == 0
    assert m["dip"] == 0.0
    # One continuous band cut into two classes at z1 = 0: no gap between their centres.
    g = torch.Generator().manual_seed(0)
    band = torch.rand(4000, 2, generator=g) * torch.tensor([12.0, 1.0]) - torch.tensor([6.0, 0.5])
    m = LM.between_cluster_metrics(band, (band[:, 0] > 0).long())
    assert m["dip"] > 0.7
    with pytest.raises(ValueError, match="one label per code"):
        LM.between_cluster_metrics(z, y[:-1])


def test_latent_codes_are_z_for_an_autoencoder_and_mu_for_a_vae():
    torch.manual_seed(0)
    x = torch.rand(50, 1, 28, 28)
    ae, vae = Autoencoder(latent_dim=3, hidden_dim=16), VAE(latent_dim=3, hidden_dim=16)
    assert torch.allclose(LM.latent_codes(ae, x, batch_size=7), ae.encode(x).detach(), atol=1e-6)
    mu, logvar = (t.detach() for t in vae.encode(x))
    assert torch.allclose(LM.latent_codes(vae, x), mu, atol=1e-6)
    z = LM.latent_codes(vae, x, sample=True, seed=3)
    eps = (z - mu) / logvar.mul(0.5).exp()
    assert not torch.allclose(z, mu) and eps.abs().max() < 6 and torch.equal(z, LM.latent_codes(vae, x, sample=True,
                                                                                              seed=3))


def test_latent_space_report_on_trained_models(tiny_data):
    rows = {}
    for name in ("ae", "vae"):
        trainer = Trainer(TrainConfig(model=name, latent_dim=2, epochs=2, seed=1, hidden_dim=64), data=tiny_data,
                          progress=False, log=None)
        trainer.fit()
        model = trainer.model.cpu().eval()
        rows[name] = LM.latent_space_report(model, tiny_data.train_x.cpu(), tiny_data.train_y.cpu(),
                                            tiny_data.test_x.cpu())
    for row in rows.values():
        assert set(row) == {"empty_cells", "box_distance_ratio", "box_far_fraction", "prior_distance_ratio",
                            "prior_far_fraction", "between_dip", "median_dip"}
        assert 0 <= row["empty_cells"] <= 1 and 0 <= row["box_far_fraction"] <= 1
        assert row["box_distance_ratio"] > 0 and row["between_dip"] >= 0
