"""Property-based tests (hypothesis): the KL functions against
torch.distributions, and random shapes and values thrown at the public
functions — each returns a correct result or raises ValueError / TypeError
whose message names the offending argument."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st
from torch.distributions import Normal, kl_divergence as torch_kl

from vae_course import losses
from vae_course.data import check_pixel_range, tensor_batches
from vae_course.models import MODELS, build_model
from vae_course.train import TrainConfig

finite = st.floats(-6, 6, allow_nan=False, allow_infinity=False, width=32)
shapes = st.tuples(st.integers(1, 6), st.integers(1, 8))


@st.composite
def tensors(draw, shape, lo=-6.0, hi=6.0):
    n = math.prod(shape)
    values = draw(st.lists(st.floats(lo, hi, allow_nan=False, width=32), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


@given(st.data(), shapes)
def test_kl_divergence_matches_torch_distributions(data, shape):
    mu, logvar = data.draw(tensors(shape)), data.draw(tensors(shape))
    expected = torch_kl(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    got = losses.kl_divergence(mu, logvar)
    assert got.shape == shape[:1] and (got >= -1e-4).all()
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-3)


@given(st.data(), shapes)
def test_gaussian_kl_matches_torch_distributions(data, shape):
    mq, lq, mp, lp = (data.draw(tensors(shape)) for _ in range(4))
    expected = torch_kl(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    torch.testing.assert_close(losses.gaussian_kl(mq, lq, mp, lp).double(), expected, rtol=1e-4, atol=1e-2)


# ------------------------------------------------------------------ random junk in, clear errors out
def _random_input(draw):
    kind = draw(st.sampled_from(["tensor", "int-tensor", "list", "none", "scalar-tensor", "number", "string"]))
    if kind == "tensor":
        dims = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4))
        return torch.randn(*dims)
    if kind == "int-tensor":
        return torch.zeros(draw(st.integers(1, 3)), draw(st.integers(1, 3)), dtype=torch.long)
    if kind == "list":
        return [[0.0, 1.0]]
    if kind == "scalar-tensor":
        return torch.tensor(1.0)
    if kind == "number":
        return draw(st.floats(allow_nan=True))
    if kind == "string":
        return "mu"
    return None


random_inputs = st.composite(_random_input)


PAIR_FUNCTIONS = {
    "kl_divergence": (losses.kl_divergence, ("mu", "logvar")),
    "kl_per_dimension": (losses.kl_per_dimension, ("mu", "logvar")),
    "reparameterize": (losses.reparameterize, ("mu", "logvar")),
    "bernoulli_nll": (losses.bernoulli_nll, ("logits", "x")),
    "gaussian_nll": (losses.gaussian_nll, ("x_hat", "x")),
}


def _assert_clear_error(err: Exception, names) -> None:
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__}: {err}"
    assert any(n in str(err) for n in names), f"message names none of {names}: {err}"


@pytest.mark.parametrize("fname", sorted(PAIR_FUNCTIONS))
@given(data=st.data())
def test_two_argument_functions_return_right_or_name_the_argument(fname, data):
    fn, names = PAIR_FUNCTIONS[fname]
    a, b = data.draw(random_inputs()), data.draw(random_inputs())
    if data.draw(st.booleans()) and isinstance(a, torch.Tensor):
        b = torch.randn_like(a.float()) if a.dim() else b  # often a valid, matching pair
    try:
        out = fn(a, b)
    except Exception as err:  # noqa: BLE001 - we inspect it
        _assert_clear_error(err, names)
        return
    # it accepted the input: then the inputs were tensors of one shape and the output is per example
    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
    if fname == "reparameterize" or fname == "kl_per_dimension":
        assert out.shape == a.shape
    elif fname in ("bernoulli_nll", "gaussian_nll"):
        assert out.shape == a.shape[:1]
    else:
        assert out.shape == a.shape[:-1]


@given(st.integers(-3, 3), st.integers(-3, 3), st.sampled_from(sorted(MODELS)))
def test_build_model_sizes(latent, hidden, name):
    try:
        model = build_model(name, latent_dim=latent, hidden_dim=hidden)
    except ValueError as err:
        assert latent <= 0 or hidden <= 0
        _assert_clear_error(err, ("latent_dim", "hidden_dim"))
        return
    assert model.config["latent_dim"] == latent and latent > 0 and hidden > 0


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4), st.sampled_from(sorted(MODELS)))
def test_models_accept_only_image_batches(dims, name):
    model = build_model(name, latent_dim=2, hidden_dim=8)
    x = torch.rand(*dims)
    y = torch.zeros(dims[0], dtype=torch.long)
    try:
        out = model(x, y)
    except (ValueError, TypeError) as err:
        _assert_clear_error(err, ("x", "y"))
        assert tuple(dims[1:]) != (1, 28, 28)
        return
    assert tuple(dims[1:]) == (1, 28, 28) and out[0].shape == x.shape


@given(st.integers(-2, 5), st.integers(0, 20))
def test_tensor_batches_sizes(batch_size, n):
    x, y = torch.rand(n, 1, 2, 2), torch.arange(n)
    try:
        batches = list(tensor_batches(x, y, batch_size, generator=torch.Generator().manual_seed(0)))
    except ValueError as err:
        _assert_clear_error(err, ("batch_size",))
        assert batch_size <= 0
        return
    assert sorted(torch.cat([b for _, b in batches] or [torch.zeros(0, dtype=torch.long)]).tolist()) == list(range(n))


@given(st.floats(-300, 300, allow_nan=False), st.floats(0, 2))
def test_pixel_range(low, spread):
    images = torch.tensor([low, low + spread])
    try:
        check_pixel_range(images, "images")
    except ValueError as err:
        _assert_clear_error(err, ("images",))
        assert images.min() < 0 or images.max() > 1
        return
    assert 0 <= images.min() and images.max() <= 1


SETTINGS = {
    "epochs": st.one_of(st.integers(-2, 3), st.just(1.5), st.just("3")),
    "batch_size": st.integers(-1, 3), "latent_dim": st.integers(-1, 3),
    "lr": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(True)),
    "beta": st.floats(allow_nan=True, allow_infinity=True), "seed": st.integers(-3, 3),
    "model": st.sampled_from(["vae", "ae", "gan", ""]), "dataset": st.sampled_from(["mnist", "svhn"]),
    "val_size": st.integers(-2, 2), "limit_train": st.one_of(st.none(), st.integers(-1, 2)),
}


@given(st.sampled_from(sorted(SETTINGS)).flatmap(lambda k: st.tuples(st.just(k), SETTINGS[k])))
def test_train_config_names_the_bad_setting(item):
    key, value = item
    cfg = TrainConfig(**{key: value})
    try:
        cfg.validate()
    except ValueError as err:
        _assert_clear_error(err, (key,))
        return
    # accepted: then the value is a sensible one
    if key in ("epochs", "batch_size", "latent_dim"):
        assert isinstance(value, int) and value > 0
    elif key == "lr":
        assert isinstance(value, float) and math.isfinite(value) and value > 0
    elif key == "beta":
        assert math.isfinite(value) and value >= 0
    elif key in ("seed", "val_size"):
        assert value >= 0
    elif key in ("model", "dataset"):
        assert value in ("vae", "ae", "mnist")


@given(st.data())
def test_iwae_log_likelihood_shapes(data):
    dims = data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    lw = torch.randn(*dims) if dims else torch.tensor(0.5)
    try:
        out = losses.iwae_log_likelihood(lw)
    except ValueError as err:
        _assert_clear_error(err, ("log_weights",))
        assert lw.dim() != 2 or lw.shape[1] == 0
        return
    assert lw.dim() == 2 and out.shape == lw.shape[:1]
    torch.testing.assert_close(out, torch.logsumexp(lw, 1) - math.log(lw.shape[1]))
