"""Checks used by notebook 1: the right answer passes, ``None`` means "not attempted",
and every wrong variant a check claims to recognise gets its hint."""
import pytest
import torch
import torch.nn.functional as F

from vae_course import checks
from vae_course.models import Autoencoder

from .helpers import assert_recognised, verdict


# ------------------------------------------------------------ squared error
def squared_error(x_hat, x):
    return (x - x_hat).pow(2).flatten(1).sum(1)


def test_squared_error_right_and_not_attempted(capsys):
    assert verdict(capsys, checks.check_squared_error, squared_error)[0] is True
    assert verdict(capsys, checks.check_squared_error, lambda xh, x: F.mse_loss(xh, x, reduction="none").sum((1, 2, 3)))[0]
    result, out = verdict(capsys, checks.check_squared_error, None)
    assert result is None and "not attempted" in out
    assert verdict(capsys, checks.check_squared_error, lambda xh, x: None)[0] is None


@pytest.mark.parametrize("name, fn", [
    ("mean over pixels", lambda xh, x: squared_error(xh, x) / 784),
    ("one number for the whole batch", lambda xh, x: squared_error(xh, x).sum()),
    ("F.mse_loss with its default reduction", lambda xh, x: F.mse_loss(xh, x)),
    ("absolute error", lambda xh, x: (x - xh).abs().flatten(1).sum(1)),
    ("norm instead of squared norm", lambda xh, x: (x - xh).flatten(1).norm(dim=1)),
])
def test_squared_error_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_squared_error, fn, name)


def test_unrecognised_wrong_answers_get_the_generic_hint(capsys):
    result, out = verdict(capsys, checks.check_squared_error, lambda xh, x: squared_error(xh, x) + 1)
    assert result is False and "term by term" in out


def test_gradients_are_checked(capsys):
    result, out = verdict(capsys, checks.check_squared_error, lambda xh, x: squared_error(xh.detach(), x))
    assert result is False and "gradients" in out


# ---------------------------------------------------------- encoder forward
def encoder_forward(x, w1, b1, w2, b2):
    h = torch.relu(x.flatten(1) @ w1.T + b1)
    return h @ w2.T + b2


def test_encoder_forward_right(capsys):
    assert verdict(capsys, checks.check_encoder_forward, encoder_forward)[0] is True
    assert verdict(capsys, checks.check_encoder_forward,
                   lambda x, w1, b1, w2, b2: F.linear(F.relu(F.linear(x.flatten(1), w1, b1)), w2, b2))[0]


@pytest.mark.parametrize("name, fn", [
    ("no ReLU", lambda x, w1, b1, w2, b2: F.linear(F.linear(x.flatten(1), w1, b1), w2, b2)),
    ("ReLU on the code too", lambda x, w1, b1, w2, b2: torch.relu(encoder_forward(x, w1, b1, w2, b2))),
    ("sigmoid instead of ReLU", lambda x, w1, b1, w2, b2: torch.sigmoid(x.flatten(1) @ w1.T + b1) @ w2.T + b2),
    ("biases forgotten", lambda x, w1, b1, w2, b2: torch.relu(x.flatten(1) @ w1.T) @ w2.T),
])
def test_encoder_forward_variants(capsys, name, fn):
    assert_recognised(capsys, checks.check_encoder_forward, fn, name)


def test_encoder_forward_reference_is_the_package_encoder():
    """The function the exercise asks for is exactly ``Autoencoder.encode``."""
    torch.manual_seed(0)
    model = Autoencoder(latent_dim=2)
    x = torch.rand(4, 1, 28, 28)
    lin1, lin2 = model.encoder[1], model.encoder[3]
    z = encoder_forward(x, lin1.weight, lin1.bias, lin2.weight, lin2.bias)
    assert torch.allclose(z, model.encode(x), atol=1e-6)
    from vae_course.checks.nb01 import encoder_forward as reference
    assert torch.allclose(reference(x, lin1.weight, lin1.bias, lin2.weight, lin2.bias), z, atol=1e-6)
