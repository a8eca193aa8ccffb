"""Checks used by notebook 5: the Gaussian NLL (at the seed's sigma and another) and the
BCE floor of grayscale targets. The capstone training step is in tests/checks/test_train_step.py."""
import math

import pytest
import torch

from vae_course import checks, losses

from .helpers import assert_recognised, verdict


def my_gaussian_nll(x_hat, x, sigma=math.sqrt(0.5)):
    squared_error = (x - x_hat).pow(2).flatten(1).sum(1)
    return squared_error / (2 * sigma**2) + x[0].numel() / 2 * math.log(2 * math.pi * sigma**2)


def test_check_gaussian_nll_at_two_sigmas_as_notebook_5_calls_it(capsys):
    assert verdict(capsys, checks.check_gaussian_nll, my_gaussian_nll)[0] is True
    assert checks.check_gaussian_nll(lambda xh, x: my_gaussian_nll(xh, x, 0.1), sigma=0.1) is True
    assert checks.check_gaussian_nll(lambda xh, x: my_gaussian_nll(xh, x), sigma=0.1) is False
    no_scale = lambda xh, x: (x - xh).pow(2).flatten(1).sum(1) + 392 * math.log(2 * math.pi * 0.01)  # noqa: E731
    assert_recognised(capsys, lambda fn: checks.check_gaussian_nll(fn, sigma=0.1), no_scale, "missing 1/(2 sigma^2)")


# ------------------------------------------------------------ the BCE floor
def test_check_bernoulli_entropy_paths(capsys):
    assert checks.check_bernoulli_entropy(None) is None
    assert checks.check_bernoulli_entropy(lambda x: None) is None
    assert "not attempted" in capsys.readouterr().out
    assert checks.check_bernoulli_entropy(losses.bernoulli_entropy) is True
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda x: -(x * torch.log(x) + (1 - x) * torch.log(1 - x)).flatten(1).sum(1), "0 log 0"),
        (lambda x: losses.bernoulli_entropy(x) / 784, "mean over pixels"),
        (lambda x: losses.bernoulli_entropy(x) / math.log(2), "bits instead of nats"),
        (lambda x: -losses.bernoulli_entropy(x), "sign error"),
        (lambda x: -torch.xlogy(x, x).flatten(1).sum(1), "only the p log p term"),
        (lambda x: losses.bernoulli_entropy(x).sum(), "summed over the batch"),
    ],
)
def test_check_bernoulli_entropy_recognises_mistakes(wrong, hint, capsys):
    assert checks.check_bernoulli_entropy(wrong) is False
    assert hint in capsys.readouterr().out


def test_check_bernoulli_entropy_survives_a_crash(capsys):
    def broken(x):
        raise RuntimeError("oops")

    assert checks.check_bernoulli_entropy(broken) is False
    assert "raised RuntimeError" in capsys.readouterr().out
