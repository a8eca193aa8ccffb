"""Notebook 5 (the full VAE): every formula it introduces, checked here too.

* the seed's ``VAE`` class, completed with a decoder, ``reparameterize`` and
  ``forward``, is the package's :class:`vae_course.models.VAE`;
* the seed's squared error is the Gaussian NLL with sigma^2 = 1/2 minus (D/2) log pi;
* a fixed sigma is a KL weight: the Gaussian loss times 2 sigma^2 is SSE + 2 sigma^2 KL
  (these two are taught in notebook 8, beside beta; notebook 5 points there);
* the BCE against grayscale targets is bounded below by the pixels' entropy
  (:func:`vae_course.losses.bernoulli_entropy`), with BCE = entropy + KL(Ber || Ber);
* (the exercise check, ``check_bernoulli_entropy``, is tested in tests/checks/test_nb05.py).
"""
from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import nbformat
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence as torch_kl

from vae_course import losses, models


# ------------------------------------------------------- the seed's VAE, completed
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_full_vae.ipynb"


def _cell(text: str) -> str:
    """The source of the one code cell of notebook 5 that contains ``text`` (read, never copied)."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
             if c.cell_type == "code" and text in c.source]
    assert len(cells) == 1, f"expected one cell of notebook 5 with {text!r}, found {len(cells)}"
    return cells[0]


def _notebook_classes() -> dict:
    """Run notebook 5's own cells that define the seed's class and its completion."""
    namespace: dict = {}
    exec(_cell("class VAE(nn.Module):"), namespace)
    exec(_cell("class CompleteVAE(VAE):"), namespace)
    return namespace


def test_completed_seed_vae_is_the_package_vae():
    CompleteVAE = _notebook_classes()["CompleteVAE"]
    torch.manual_seed(0)
    mine = CompleteVAE()
    torch.manual_seed(0)
    ref = models.VAE()
    # same layer names, shapes, and (created in the same order) the same initial weights
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    for (k1, v1), (k2, v2) in zip(mine.state_dict().items(), ref.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert sum(p.numel() for p in ref.parameters()) == 652_824
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    out_mine = mine(x)
    torch.manual_seed(7)
    out_ref = ref(x)
    for a, b in zip(out_mine, out_ref):
        torch.testing.assert_close(a, b)


# ----------------------------------------------- squared error = Gaussian NLL
def _images(seed: int, batch: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, 28, 28, generator=g), torch.rand(batch, 1, 28, 28, generator=g)


def test_squared_error_is_gaussian_nll_with_half_variance():
    x_hat, x = _images(0)
    d = 784
    sse = (x - x_hat).pow(2).flatten(1).sum(1)
    nll = losses.gaussian_nll(x_hat, x)  # default sigma^2 = 1/2
    torch.testing.assert_close(nll - sse, torch.full((6,), 0.5 * d * math.log(math.pi)))
    by_torch = -Normal(x_hat.double(), math.sqrt(0.5)).log_prob(x.double()).flatten(1).sum(1)
    torch.testing.assert_close(nll.double(), by_torch, rtol=1e-6, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(min_value=0.01, max_value=3.0), seed=st.integers(0, 10_000))
def test_fixed_sigma_is_a_kl_weight(sigma: float, seed: int):
    """2 sigma^2 * (Gaussian NLL + KL) = SSE + 2 sigma^2 KL + a constant: beta = 2 sigma^2."""
    x_hat, x = _images(seed, batch=3)
    g = torch.Generator().manual_seed(seed + 1)
    mu, logvar = torch.randn(3, 20, generator=g, dtype=torch.float64), torch.randn(3, 20, generator=g,
                                                                                    dtype=torch.float64)
    kl = losses.kl_divergence(mu, logvar).double()
    gauss = losses.gaussian_nll(x_hat, x, sigma).double()
    sse = (x - x_hat).pow(2).flatten(1).sum(1).double()
    const = 0.5 * 784 * math.log(2 * math.pi * sigma**2)
    lhs = 2 * sigma**2 * (gauss - const + kl)
    torch.testing.assert_close(lhs, sse + 2 * sigma**2 * kl, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------ the BCE floor on grayscale
def test_bernoulli_entropy_is_the_minimum_bce():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 1, 28, 28, generator=g).double().clamp(1e-6, 1 - 1e-6)
    floor = losses.bernoulli_entropy(x)
    assert floor.shape == (4,) and bool((floor > 0).all())
    # the decoder that predicts p = x exactly reaches the floor ...
    perfect = losses.bernoulli_nll(torch.logit(x), x)
    torch.testing.assert_close(perfect.double(), floor.double(), rtol=1e-5, atol=1e-3)
    # ... and any other prediction pays the extra KL(Ber(x) || Ber(p)) >= 0
    logits = torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64) * 2
    bce = losses.bernoulli_nll(logits, x).double()
    extra = torch_kl(Bernoulli(probs=x), Bernoulli(logits=logits)).flatten(1).sum(1)
    torch.testing.assert_close(bce, floor.double() + extra, rtol=1e-5, atol=1e-3)
    assert bool((bce >= floor.double() - 1e-3).all())


def test_bernoulli_entropy_values():
    half = torch.full((1, 1, 28, 28), 0.5)
    torch.testing.assert_close(losses.bernoulli_entropy(half), torch.tensor([784 * math.log(2)]))
    binary = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(losses.bernoulli_entropy(binary), torch.zeros(3))  # 0 log 0 = 0, no NaN
    torch.testing.assert_close(
        losses.bernoulli_entropy(torch.full((2, 5), 0.2)),
        Bernoulli(probs=torch.full((2, 5), 0.2)).entropy().sum(1),
    )


def test_bernoulli_entropy_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.bernoulli_entropy(torch.full((2, 4), 255.0))
    with pytest.raises(ValueError, match="batch"):
        losses.bernoulli_entropy(torch.rand(4))
    with pytest.raises(TypeError):
        losses.bernoulli_entropy([[0.5]])



# ------------------------------------------------ the loop the learner reads
def test_notebook_shows_the_package_loop_itself():
    """Notebook 5 prints ``train_epoch``'s own source: no second copy exists to drift."""
    cell = _cell("inspect.getsource(train_epoch)")
    assert "from vae_course.train import train_epoch" in cell


def test_trainer_runs_train_epoch_at_its_core(monkeypatch, tiny_data):
    """Every Trainer epoch is one call of the function notebook 5 shows (a pass-through spy)."""
    from vae_course import train

    calls = []
    real = train.train_epoch

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", spy)
    config = train.TrainConfig(model="vae", epochs=2, limit_train=len(tiny_data.train_x),
                               limit_test=len(tiny_data.test_x), log_every=5)
    train.Trainer(config, data=tiny_data, progress=False, log=None).fit()
    assert len(calls) == 2


def _function_body(source: str, name: str) -> str:
    fn = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == name)
    body = [b for b in fn.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


def test_capstone_solution_is_the_checks_reference():
    """The folded solution of the capstone is the reference the check trains with."""
    from vae_course.checks.train_step import train_step_solution

    solution = _cell("# @title Solution\ndef train_step_solution(")
    assert _function_body(solution, "train_step_solution") == _function_body(
        inspect.getsource(train_step_solution), "train_step_solution")
    stub = _cell("def train_step(model, optimizer, x):\n    # Your code")
    assert "raise NotImplementedError" in stub
