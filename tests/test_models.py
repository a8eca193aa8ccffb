"""The four models: shapes, logits, configs, clear errors for bad inputs, and the
convolution output-size formulas."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from vae_course.models import (CVAE, MODELS, VAE, Autoencoder, ConvVAE, build_model, conv2d_output_size,
                               conv_transpose2d_output_size)

X = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
Y = torch.arange(5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shapes_and_logits(name):
    torch.manual_seed(0)
    model = build_model(name, latent_dim=3)
    y = Y if name == "cvae" else None
    out = model(X, y)
    logits = out[0]
    assert logits.shape == (5, 1, 28, 28)
    assert logits.min() < 0 or logits.max() > 1 or True  # logits are unbounded
    if model.is_variational:
        _, mu, logvar = out
        assert mu.shape == logvar.shape == (5, 3)
        enc = model.encode(X, y)
        assert isinstance(enc, tuple) and enc[0].shape == (5, 3)
        assert model.decode(mu, y).shape == (5, 1, 28, 28)
        samples = model.sample(7, y=torch.arange(7) % 10 if name == "cvae" else None,
                               generator=torch.Generator().manual_seed(1))
        assert samples.shape == (7, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
        again = model.sample(7, y=torch.arange(7) % 10 if name == "cvae" else None,
                             generator=torch.Generator().manual_seed(1))
        assert torch.equal(samples, again)
    else:
        assert out[1].shape == (5, 3)
    # config rebuilds an identical architecture
    clone = build_model(name, **model.config)
    assert [p.shape for p in clone.parameters()] == [p.shape for p in model.parameters()]


def test_decoders_return_logits_not_probabilities():
    model = VAE()
    with torch.no_grad():
        model.fc4.bias.fill_(5.0)  # logits far above 1 are only possible before a sigmoid
        assert model.decode(torch.zeros(2, 20)).min() > 1


def test_vae_is_the_seed_architecture():
    model = VAE()
    sizes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert sizes == {
        "fc1.weight": (400, 784), "fc1.bias": (400,), "fc21.weight": (20, 400), "fc21.bias": (20,),
        "fc22.weight": (20, 400), "fc22.bias": (20,), "fc3.weight": (400, 20), "fc3.bias": (400,),
        "fc4.weight": (784, 400), "fc4.bias": (784,),
    }
    assert model.config == {"latent_dim": 20, "hidden_dim": 400}


def test_conv_vae_docstring_architecture():
    model = ConvVAE(latent_dim=8)
    assert model.encoder(X).shape == (5, 256)
    assert "Conv" in ConvVAE.__doc__ and "ConvTranspose" in ConvVAE.__doc__


def test_cvae_conditions_on_the_label():
    torch.manual_seed(0)
    model = CVAE(latent_dim=2)
    z = torch.zeros(2, 2)
    a = model.decode(z, torch.tensor([1, 1]))
    b = model.decode(z, torch.tensor([1, 7]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="y: the CVAE needs the labels"):
        model(X)
    with pytest.raises(ValueError, match="y: expected integer labels of shape"):
        model(X, torch.arange(3))


@pytest.mark.parametrize("bad", [torch.rand(5, 784), torch.rand(5, 3, 28, 28), torch.rand(1, 28, 28),
                                 torch.rand(2, 1, 32, 32)])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_wrong_image_shapes_name_x(name, bad):
    model = build_model(name, latent_dim=2)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(batch, 1, 28, 28\)"):
        model(bad, torch.zeros(len(bad), dtype=torch.long))


def test_non_tensor_and_integer_images_are_type_errors():
    with pytest.raises(TypeError, match="x"):
        VAE()([[0.0] * 784])
    with pytest.raises(TypeError, match="x"):
        VAE()(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize("kwargs, arg", [({"latent_dim": 0}, "latent_dim"), ({"hidden_dim": -3}, "hidden_dim"),
                                         ({"latent_dim": 2.5}, "latent_dim"), ({"latent_dim": True}, "latent_dim")])
@pytest.mark.parametrize("cls", [Autoencoder, VAE, ConvVAE, CVAE])
def test_bad_sizes_are_named(cls, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        cls(**kwargs)


def test_build_model_errors():
    with pytest.raises(ValueError, match="model: unknown name 'gan'"):
        build_model("gan")
    with pytest.raises(ValueError, match="bad constructor arguments"):
        build_model("vae", depth=3)


# ------------------------------------------------------------ convolution sizes
@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4), padding=st.integers(0, 3))
def test_conv2d_output_size_matches_torch(size, kernel, stride, padding):
    if size + 2 * padding < kernel:
        with pytest.raises(ValueError):
            conv2d_output_size(size, kernel, stride, padding)
        return
    out = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)(torch.zeros(1, 1, size, size))
    assert conv2d_output_size(size, kernel, stride, padding) == out.shape[-1]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 20), kernel=st.integers(1, 6), stride=st.integers(1, 3), padding=st.integers(0, 2),
       output_padding=st.integers(0, 2))
def test_conv_transpose2d_output_size_matches_torch(size, kernel, stride, padding, output_padding):
    if output_padding >= stride:  # torch requires output_padding < stride
        return
    expected = conv_transpose2d_output_size(size, kernel, stride, padding, output_padding)
    if expected <= 0:
        return
    layer = nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, output_padding=output_padding)
    assert layer(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_conv_vae_shapes_follow_the_formulas():
    assert conv2d_output_size(28, 4, 2, 1) == 14 and conv2d_output_size(14, 4, 2, 1) == 7
    assert conv_transpose2d_output_size(7, 4, 2, 1) == 14 and conv_transpose2d_output_size(14, 4, 2, 1) == 28
    model = ConvVAE(latent_dim=50)
    x = torch.rand(3, 1, 28, 28)
    assert model.encoder[:2](x).shape == (3, 32, 14, 14)
    assert model.encoder[:4](x).shape == (3, 64, 7, 7)
    assert model.decode(torch.zeros(3, 50)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("args", [(0, 3, 1, 0), (5, 0, 1, 0), (5, 3, 0, 0), (5, 3, 1, -1), (2, 5, 1, 0)])
def test_conv2d_output_size_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        conv2d_output_size(*args)
