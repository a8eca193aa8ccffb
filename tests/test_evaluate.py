"""Evaluation: the ELBO, its per-example terms and the IWAE estimate (vae_course.evaluate)."""
from __future__ import annotations

import math

import pytest
import torch

from vae_course import evaluate
from vae_course.models import CVAE, Autoencoder


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


# ---------------------------------------------------------------- a long IWAE run, seen coming (issue 23)
def test_the_iwae_progress_bar_moves_with_every_decoder_pass(model_and_x, monkeypatch):
    """The bar counts samples and moves after each decoder pass, not once per batch of
    images: with a small memory budget one image's K samples take many passes."""
    model, x = model_and_x
    updates: list[int] = []
    real = evaluate.progress_bar

    def recording_bar(*args, **kwargs):
        bar = real(*args, **kwargs)  # the real bar (it still draws); its updates are recorded too
        update = bar.update
        bar.update = lambda n=1: (updates.append(n), update(n))[1]
        return bar

    monkeypatch.setattr(evaluate, "progress_bar", recording_bar)
    per_sample = evaluate.iwae_bytes_per_sample(model, x[:1])
    evaluate.iwae_nll(model, x[:2], k=300, memory_budget=per_sample * 50, progress=True)
    assert sum(updates) == 2 * 300  # every sample of every image, counted once
    assert len(updates) >= 2 * 300 // 50  # one update per decoder pass of at most 50 samples


def test_iwae_duration_is_estimated_by_a_bounded_probe(model_and_x):
    """A K of a million on 10,000 images: the probe times a small part (never the full K)
    and the estimate scales it to the whole run."""
    model, _ = model_and_x
    x = torch.rand(10_000, 1, 28, 28)
    seconds, probed = evaluate.iwae_seconds_estimate(model, x, None, k=1_000_000, probe_seconds=0.05)
    assert 0 < probed < 1_000_000 and seconds > 0
    with pytest.raises(ValueError) as info:  # over the limit: refused, with the estimate and what to do
        evaluate.check_iwae_duration(model, x, None, 1_000_000, "cpu", limit_seconds=1.0)
    message = str(info.value)
    assert "would take about" in message and "--sample-test" in message and "--allow-long" in message
    line = evaluate.check_iwae_duration(model, x[:3], None, 5, "cpu", allow_long=True)
    assert line.startswith("IWAE estimate: K=5 on 3 images, about") and "\n" not in line


def test_iwae_k_has_the_cli_bound(model_and_x):
    model, x = model_and_x
    with pytest.raises(ValueError, match="from 1 to 1000000"):
        evaluate.iwae_nll(model, x[:1], k=10**9, progress=False)
