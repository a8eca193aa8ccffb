"""Tests of vae_course.generalization: train-vs-test gaps and the overfitting experiment."""
import pytest
import torch

from vae_course import generalization as G
from vae_course.evaluate import per_example_terms
from vae_course.losses import bernoulli_nll
from vae_course.models import VAE, Autoencoder


def test_reconstruction_at_mean_decodes_mu():
    torch.manual_seed(0)
    vae, ae = VAE(latent_dim=3, hidden_dim=16), Autoencoder(latent_dim=3, hidden_dim=16)
    x = torch.rand(20, 1, 28, 28)
    mu, _ = vae.encode(x)
    assert torch.allclose(G.reconstruction_at_mean(vae, x, batch_size=6), bernoulli_nll(vae.decode(mu), x).detach())
    assert torch.allclose(G.reconstruction_at_mean(ae, x), bernoulli_nll(ae(x)[0], x).detach())


def test_train_test_gap_uses_the_same_number_of_images(mnist_small):
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, hidden_dim=32)
    train_x, test_x = mnist_small.train_x, mnist_small.test_x
    out = G.train_test_gap(vae, train_x, test_x)
    assert out["n"] == len(test_x) == 500
    recon, kl = per_example_terms(vae, test_x)
    assert out["test_elbo"] == pytest.approx(-(recon + kl).double().mean().item(), rel=1e-6)
    assert out["recon_gap"] == pytest.approx(out["test_recon"] - out["train_recon"])
    assert out["elbo_gap"] == pytest.approx(out["train_elbo"] - out["test_elbo"])
    assert "train_elbo" not in G.train_test_gap(Autoencoder(latent_dim=4, hidden_dim=32), train_x, test_x, n=50)
    with pytest.raises(ValueError, match="images of each split"):
        G.train_test_gap(vae, train_x, test_x, n=501)


def test_variants_share_their_start_and_differ_only_in_the_objective(mnist_small):
    x = mnist_small.train_x[:64]
    a, _ = G.train_variant("vae-no-noise", x, epochs=1, hidden_dim=32, seed=3)
    b, _ = G.train_variant("vae-no-noise", x, epochs=1, hidden_dim=32, seed=3)
    c, _ = G.train_variant("vae", x, epochs=1, hidden_dim=32, seed=3)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name  # deterministic: same seed, same model
    assert not torch.equal(a.fc1.weight, c.fc1.weight)  # the sampling noise changed the updates
    with pytest.raises(ValueError, match="variant"):
        G.train_variant("gan", x, epochs=1)


def test_a_small_training_set_is_memorized(mnist_small):
    # 64 images, 40 epochs: the autoencoder variant explains its own images far better than new ones.
    runs = G.overfitting_experiment(mnist_small.train_x, mnist_small.test_x, n_train=64, epochs=40,
                                    variants=("ae", "vae"), eval_every=20, n_eval=64, hidden_dim=64, batch_size=32)
    assert set(runs) == {"ae", "vae"}
    for history in runs.values():
        assert [h["epoch"] for h in history] == [20, 40] and all(h["n"] == 64 for h in history)
    ae = runs["ae"]
    assert ae[-1]["train_recon"] < ae[0]["train_recon"]
    assert ae[-1]["recon_gap"] > 10  # nats per image: memorizing
    assert "elbo_gap" in runs["vae"][-1] and "elbo_gap" not in ae[-1]
