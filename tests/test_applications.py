"""Unit tests for vae_course.applications (anomaly scores, augmentation, compression, corruptions)."""
import math

import numpy as np
import pytest
import torch

from vae_course import applications as A
from vae_course.evaluate import per_example_terms
from vae_course.models import CVAE, VAE


def test_anomaly_scores_are_the_negative_elbo():
    torch.manual_seed(0)
    model = VAE(latent_dim=3, hidden_dim=16)
    x = torch.bernoulli(torch.full((12, 1, 28, 28), 0.3))
    scores = A.anomaly_scores(model, x)
    recon, kl = per_example_terms(model, x)
    assert scores.shape == (12,)
    assert torch.allclose(scores, recon + kl)


def test_auroc_known_values():
    normal = torch.tensor([0.0, 1.0, 2.0])
    assert A.auroc(normal, torch.tensor([3.0, 4.0])) == 1.0
    assert A.auroc(normal, torch.tensor([-1.0, -2.0])) == 0.0
    # ties count one half: P(anomalous > normal) = (0.5 + 1 + 1) / 3
    assert math.isclose(A.auroc(normal, torch.tensor([0.0])), 1 / 6)
    assert math.isclose(A.auroc(torch.tensor([1.0]), torch.tensor([1.0])), 0.5)


def test_auroc_equals_the_pairwise_probability():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, generator=g), torch.randn(30, generator=g) + 0.5
    pairwise = ((b[:, None] > a[None, :]).double() + 0.5 * (b[:, None] == a[None, :]).double()).mean()
    assert math.isclose(A.auroc(a, b), float(pairwise), rel_tol=1e-9)


def test_roc_curve_ends_at_corners():
    fpr, tpr = A.roc(torch.tensor([0.1, 0.4, 0.35]), torch.tensor([0.8, 0.3]))
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


@pytest.mark.parametrize("bad", [torch.zeros(0), torch.zeros(2, 2), [1.0]])
def test_auroc_rejects_bad_inputs(bad):
    with pytest.raises(ValueError):
        A.auroc(bad, torch.ones(3))


def test_shift_images_moves_pixels_without_changing_mass_when_room():
    x = torch.zeros(50, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0  # a square far from the border
    g = torch.Generator().manual_seed(0)
    out = A.shift_images(x, max_shift=3, generator=g)
    assert out.shape == x.shape
    assert torch.all(out.sum((1, 2, 3)) == 64)  # nothing falls off the edge
    assert not torch.equal(out, x)
    assert torch.equal(A.shift_images(x, max_shift=0), x)


def test_shift_images_offsets_are_bounded():
    x = torch.zeros(200, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    out = A.shift_images(x, max_shift=2, generator=torch.Generator().manual_seed(1))
    pos = out[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 28, pos % 28
    assert rows.min() >= 12 and rows.max() <= 16 and cols.min() >= 12 and cols.max() <= 16
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 15  # many different offsets


def test_train_classifier_learns_a_trivial_task_and_is_reproducible():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(40, 1, 28, 28)
    y = torch.arange(40) % 2
    x[y == 1, :, :14] = 1.0  # class 1: top half white
    x = (x + 0.1 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    m1 = A.train_classifier(x, y, steps=30, batch_size=16, seed=3)
    m2 = A.train_classifier(x, y, steps=30, batch_size=16, seed=3)
    assert A.accuracy(m1, x, y) == 1.0
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert not m1.training


def test_train_classifier_calls_augment_on_every_batch():
    calls = []

    def augment(xb, yb, gen):
        calls.append(len(xb))
        return torch.cat([xb, xb]), torch.cat([yb, yb])

    A.train_classifier(torch.rand(10, 1, 28, 28), torch.arange(10), steps=4, batch_size=5, augment=augment)
    assert calls == [5, 5, 5, 5]


def test_classifier_shapes():
    assert A.SmallClassifier()(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    m = A.SmallClassifier().eval()
    assert A.accuracy(m, torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)) in {i / 5 for i in range(6)}


def test_mean_ci_matches_the_t_interval():
    mean, half = A.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    # t_{0.975, 4} = 2.7764; sd = sqrt(2.5)
    assert math.isclose(half, 2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel_tol=1e-6)
    with pytest.raises(ValueError):
        A.mean_ci([1.0])


def test_png_bytes_binary_and_gray():
    blank = torch.zeros(1, 28, 28)
    digit = torch.zeros(28, 28)
    digit[5:23, 12:16] = 1.0
    g = torch.Generator().manual_seed(0)
    noise = torch.bernoulli(torch.full((28, 28), 0.5), generator=g)
    sizes = [A.png_bytes(img) for img in (blank, digit, noise)]
    assert all(s > 60 for s in sizes)  # PNG headers alone are ~60 bytes
    assert sizes[0] <= sizes[1] < sizes[2]  # noise is incompressible
    assert A.png_bytes(noise) < A.png_bytes(noise, binary=False)


def test_flip_pixels():
    x = torch.zeros(100, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    out = A.flip_pixels(x, 0.1, generator=g)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert abs(out.mean().item() - 0.1) < 0.01
    assert torch.equal(A.flip_pixels(x, 0.0), x)
    assert torch.equal(A.flip_pixels(x, 1.0), 1 - x)
    with pytest.raises(ValueError):
        A.flip_pixels(x, 1.5)


def test_occlude():
    x = torch.ones(2, 1, 28, 28)
    out = A.occlude(x, top=4, left=6, size=10)
    assert out.sum() == 2 * (784 - 100)
    assert x.sum() == 2 * 784  # the input is not modified
    assert A.occlude(x, 20, 20, 14).sum() == 2 * (784 - 64)  # clipped at the border
    with pytest.raises(ValueError):
        A.occlude(x, 30, 0, 3)


def test_cvae_can_feed_an_augmentation():
    cvae = CVAE(latent_dim=2, hidden_dim=8)
    y = torch.arange(10)
    imgs = cvae.sample(10, y=y, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (10, 1, 28, 28) and imgs.min() >= 0 and imgs.max() <= 1


def test_impute_keeps_observed_pixels_and_fills_the_rest():
    torch.manual_seed(0)
    model = VAE(latent_dim=2, hidden_dim=8)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3))
    observed = torch.ones_like(x)
    observed[..., 10:20, 10:20] = 0
    out = A.impute(model, x, observed, steps=3)
    assert out.shape == x.shape
    assert torch.equal(out[observed.bool()], x[observed.bool()])
    missing = out[~observed.bool()]
    assert torch.all((missing > 0) & (missing < 1))  # model probabilities, not the hidden pixels
    assert torch.equal(A.impute(model, x, torch.ones_like(x), steps=1), x)
    with pytest.raises(ValueError):
        A.impute(model, x, observed, steps=0)


class _CountingBar:
    """Stands in for a tqdm bar's one method that train_classifier uses: update(n)."""

    def __init__(self):
        self.n = 0

    def update(self, n=1):
        self.n += n


def test_train_classifier_advances_a_shared_bar_once_per_step_and_trains_the_same_model():
    x, y = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 3
    bar = _CountingBar()
    silent = A.train_classifier(x, y, steps=5, batch_size=4, seed=1)
    shared = A.train_classifier(x, y, steps=5, batch_size=4, seed=1, bar=bar)
    A.train_classifier(x, y, steps=3, batch_size=4, seed=1, bar=bar)  # a second run on the same bar
    own = A.train_classifier(x, y, steps=5, batch_size=4, seed=1, bar=True)
    assert bar.n == 8
    for model in (shared, own):  # the bar only watches: the weights are those of a silent run
        assert all(torch.equal(p, q) for p, q in zip(silent.parameters(), model.parameters()))


def _tiny_vae_and_digits():
    torch.manual_seed(0)
    model = VAE(latent_dim=4, hidden_dim=16).eval()
    x = torch.bernoulli(torch.full((6, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(1))
    return model, x


def test_lossy_code_charges_the_kl_of_the_dimensions_it_sends():
    from vae_course.diagnostics import posterior_params
    from vae_course.losses import kl_per_dimension

    model, x = _tiny_vae_and_digits()
    mu, logvar = posterior_params(model, x)
    kl = kl_per_dimension(mu, logvar)
    full = A.lossy_code(model, x, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(full["rate_bits"], kl.sum(1) / math.log(2))
    two = A.lossy_code(model, x, dims=torch.tensor([1, 3]), generator=torch.Generator().manual_seed(2))
    assert torch.allclose(two["rate_bits"], kl[:, [1, 3]].sum(1) / math.log(2))
    none = A.lossy_code(model, x, dims=torch.tensor([], dtype=torch.long))
    assert torch.equal(none["rate_bits"], torch.zeros(6))


def test_lossy_code_measures_the_error_of_the_sample_it_sends():
    from vae_course.diagnostics import posterior_params

    model, x = _tiny_vae_and_digits()

    mu, logvar = posterior_params(model, x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    z = mu + torch.exp(0.5 * logvar) * eps
    z[:, 0] = 0.0  # dimension 0 is not sent: the receiver uses the prior mean
    with torch.no_grad():
        expected = ((torch.sigmoid(model.decode(z)) > 0.5).float() != x).float().flatten(1).mean(1)
    code = A.lossy_code(model, x, dims=torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(3))
    assert torch.equal(code["wrong"], expected)
