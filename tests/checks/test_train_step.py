"""Notebook 5's capstone check, on real MNIST: the solution passes, four deliberately wrong
steps (written as a learner would) fail with the right diagnosis, and stubs are "not
attempted yet". Each full check trains the seed's VAE for 94 steps on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from course_testing import needs_mnist
from vae_course import checks
from vae_course.checks import train_step as T
from vae_course.evaluate import evaluate_elbo

pytestmark = needs_mnist


def learner_step(reduce="mean", kl_sign=1.0, variance_of=torch.exp, zero_grad=True):
    """The notebook's solution with one knob per classic mistake."""

    def train_step(model, optimizer, x):
        if zero_grad:
            optimizer.zero_grad()
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = model.decode(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - variance_of(logvar)).sum(1)
        per_example = recon + kl_sign * kl
        loss = per_example.mean() if reduce == "mean" else per_example.sum()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


def run(capsys, fn):
    result = checks.check_train_step(fn)
    return result, capsys.readouterr().out


def test_the_solution_and_the_package_step_pass(capsys):
    result, out = run(capsys, T.train_step_solution)
    assert result is True and "✅" in out, out
    assert checks.check_train_step(learner_step()) is True


def test_the_target_comes_from_a_run_of_the_reference_step():
    model, returned = T.run_steps(T.reference_step(), T.training_batches(T.capstone_data()))
    assert len(returned) == 94
    test_loss = evaluate_elbo(model, T.capstone_data().test_x)["loss"]
    assert test_loss == pytest.approx(T.REFERENCE_TEST_LOSS, abs=0.5)
    assert T.TARGET_LOSS == T.REFERENCE_TEST_LOSS + T.TARGET_MARGIN


@pytest.mark.parametrize("wrong, diagnosis, trains_badly", [
    (learner_step(reduce="sum"), "sum over the batch instead of the mean", False),
    (learner_step(kl_sign=-1.0), "KL sign flipped", True),
    (learner_step(variance_of=lambda logvar: logvar), "log-variance used as the variance", True),
    (learner_step(zero_grad=False), "missing optimizer.zero_grad()", True),
], ids=["sum", "kl-sign", "logvar-as-variance", "no-zero-grad"])
def test_each_classic_mistake_fails_with_its_diagnosis(capsys, wrong, diagnosis, trains_badly):
    result, out = run(capsys, wrong)
    assert result is False and "❌" in out, out
    assert f"Hint ({diagnosis})" in out, out
    assert ("above the target" in out) is trains_badly, out  # a summed loss still trains with Adam


def test_the_extra_mistakes_are_named_too(capsys):
    def sigma_is_logvar(model, optimizer, x):
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        z = mu + logvar * torch.randn_like(mu)  # logvar where sigma belongs
        loss = (F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum") / len(x)
                + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean())
        loss.backward()
        optimizer.step()
        return loss

    assert "Hint (log-variance used as sigma)" in run(capsys, sigma_is_logvar)[1]


@pytest.mark.parametrize("stub", [lambda m, o, x: None, None], ids=["returns-None", "None"])
def test_a_stub_is_not_attempted_yet(capsys, stub):
    result, out = run(capsys, stub)
    assert result is None and "not attempted yet" in out


def test_not_implemented_is_not_attempted_yet(capsys):
    def stub(model, optimizer, x):
        raise NotImplementedError

    result, out = run(capsys, stub)
    assert result is None and "not attempted yet" in out


def test_broken_steps_fail_kindly(capsys):
    def broken(model, optimizer, x):
        raise RuntimeError("boom")

    result, out = run(capsys, broken)
    assert result is False and "raised RuntimeError at step 1: boom" in out
    result, out = run(capsys, lambda m, o, x: torch.zeros(3))
    assert result is False and "one number" in out
    assert checks.check_train_step(42) is False


def test_the_check_leaves_the_global_random_state_alone():
    torch.manual_seed(7)
    want = torch.rand(3)
    torch.manual_seed(7)
    checks.check_train_step(lambda m, o, x: None)
    assert torch.equal(torch.rand(3), want)
