"""Checks used by notebook 3: ``reparameterize`` (written with ``torch.randn_like``, as the
notebook does) and the score-function estimator."""
import torch

from vae_course import checks
from vae_course import estimators as est

from .helpers import assert_recognised


def test_check_reparameterize_accepts_randn_like_noise(capsys):
    def mine(mu, logvar):
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    assert checks.check_reparameterize(mine) is True
    assert_recognised(capsys, checks.check_reparameterize,
                      lambda mu, lv: mu + torch.exp(lv) * torch.randn_like(mu),
                      "variance instead of standard deviation")


def test_check_score_function():
    from vae_course.checks import check_score_function

    assert check_score_function(None) is None
    assert check_score_function(lambda f, z, mu, sigma: est.score_function_terms(f, z, mu, sigma)) is True
    assert check_score_function(lambda f, z, mu, sigma: f(z) * (z - mu) / sigma) is False
    assert check_score_function(lambda f, z, mu, sigma: (z - mu) / sigma**2) is False
