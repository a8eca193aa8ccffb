"""Tests of vae_course.probes: linear classifiers on few labels, pixels vs codes."""
import pytest
import torch

from vae_course import probes as P
from vae_course.models import VAE


def test_balanced_subset_takes_as_many_of_each_class():
    y = torch.arange(10).repeat(30)
    idx = P.balanced_subset(y, 50, torch.Generator().manual_seed(0))
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert torch.bincount(y[idx], minlength=10).tolist() == [5] * 10
    other = P.balanced_subset(y, 50, torch.Generator().manual_seed(1))
    assert set(other.tolist()) != set(idx.tolist())
    with pytest.raises(ValueError, match="multiple"):
        P.balanced_subset(y, 55)
    with pytest.raises(ValueError, match="only 30"):
        P.balanced_subset(y, 400)


def test_linear_probe_on_pixels_learns_digits(mnist_small):
    d = mnist_small
    train_f, test_f = d.train_x.flatten(1), d.test_x.flatten(1)
    res = P.linear_probe(train_f, d.train_y, test_f, d.test_y, n_labels=100, seeds=(0, 1))
    assert res["mean"] > 0.55 and len(res["accuracies"]) == 2 and res["std"] >= 0
    # Labels that carry no information about the images: chance level.
    shuffled = d.train_y[torch.randperm(len(d.train_y), generator=torch.Generator().manual_seed(0))]
    noise = P.linear_probe(train_f, shuffled, test_f, d.test_y, n_labels=100, seeds=(0,))
    assert noise["mean"] < 0.3


def test_compare_features_runs_every_budget(mnist_small):
    d = mnist_small
    torch.manual_seed(0)
    vae = VAE(latent_dim=8, hidden_dim=32)
    features = {"pixels": (d.train_x.flatten(1), d.test_x.flatten(1)),
                "mu": (P.latent_codes(vae, d.train_x), P.latent_codes(vae, d.test_x))}
    out = P.compare_features(features, d.train_y, d.test_y, n_labels=(20, 50), seeds=(0,))
    assert set(out) == {"pixels", "mu"} and set(out["mu"]) == {20, 50}
    for per_budget in out.values():
        for res in per_budget.values():
            assert 0 <= res["mean"] <= 1
