"""The benchmark (a tiny run: it must work and write valid JSON; no time is ever
asserted), the canonical example's loss, the learning-rate schedule and the
trainer's lean hot path."""
from __future__ import annotations

import json
import math

import pytest
import torch

from vae_course import bench
from vae_course.cli import main
from vae_course.losses import bernoulli_nll, kl_divergence
from vae_course.train import LR_SCHEDULES, TrainConfig, Trainer, TrainingDiverged, _InterruptFlag, lr_at

TINY = dict(epochs=2, repeats=1, threads=1, limit_train=256, limit_test=128)


@pytest.fixture(scope="module")
def tiny_bench(mnist_small):
    return bench.run_bench(**TINY, log=None)


def test_bench_record_has_every_field(tiny_bench):
    r = tiny_bench
    for key in ("command", "commit", "date", "torch_version", "device", "threads", "settings", "methods",
                "ratio", "cpu_ratio"):
        assert key in r, key
    assert r["threads"] == 1 and r["settings"]["batch_size"] == 128 and r["settings"]["lr"] == 1e-3
    for side in (bench.USUAL, bench.PACKAGE):
        m = r["methods"][side]
        assert len(m["warmup_seconds"]) == 1 and len(m["steady_seconds"]) == 1  # 2 epochs: 1 warm-up + 1
        assert m["seconds_min"] <= m["seconds_median"] <= m["seconds_max"]
        assert m["images_per_second"] > 0 and math.isfinite(m["test_loss_median"])
        assert len(m["runs"][0]["test_loss"]) == 2  # one test loss per epoch (the ELBO-vs-time curve)
    json.loads(json.dumps(r))  # JSON-ready
    table = bench.format_table(r)
    assert "speed-up" in table and "usual recipe" in table and "vae_course trainer" in table


def test_bench_cli_writes_json(tmp_path, mnist_small, capsys):
    out = tmp_path / "sub" / "bench.json"
    argv = ["bench", "--epochs", "2", "--repeats", "1", "--threads", "1", "--limit-train", "256",
            "--limit-test", "128", "--json", str(out)]
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["command"].startswith("python -m vae_course") or record["command"].startswith("vae_course")
    assert record["methods"]["package"]["label"] == "vae_course trainer"
    assert "speed-up" in capsys.readouterr().out


def test_bench_rejects_one_epoch(capsys):
    assert main(["bench", "--epochs", "1"]) == 1  # the first epoch is only the warm-up
    assert "at least 2" in capsys.readouterr().err


def test_example_loss_equals_package_terms():
    """The canonical example's BCE-on-probabilities + KL equals the package's
    Bernoulli NLL on logits + closed-form KL (summed over the batch)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 1, 28, 28, generator=gen) * 3
    x = torch.rand(8, 1, 28, 28, generator=gen)
    mu, logvar = torch.randn(8, 20, generator=gen), torch.randn(8, 20, generator=gen)
    ours = (bernoulli_nll(logits, x) + kl_divergence(mu, logvar)).sum()
    theirs = bench.example_loss(torch.sigmoid(logits).view(8, 784), x, mu, logvar)
    assert torch.allclose(ours, theirs, rtol=1e-4)


def test_example_vae_has_the_seed_layers():
    names = [n for n, _ in bench.ExampleVAE().named_parameters()]
    assert names == [f"{layer}.{p}" for layer in ("fc1", "fc21", "fc22", "fc3", "fc4") for p in ("weight", "bias")]


# ---------------------------------------------------------------- the LR schedule
@pytest.mark.parametrize("progress, expected", [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (0.25, 0.8535534), (2.0, 0.0)])
def test_cosine_schedule_values(progress, expected):
    # lr * (1 + cos(pi t)) / 2
    assert lr_at(1.0, "cosine", progress) == pytest.approx(expected, abs=1e-7)
    assert lr_at(3e-3, "constant", progress) == 3e-3


def test_unknown_schedule_is_rejected():
    assert LR_SCHEDULES == ("constant", "cosine")
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear").validate()
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_at(1.0, "step", 0.5)


def _trainer(data, **cfg):
    settings = {"epochs": 2, "batch_size": 128, "device": "cpu", "seed": 1, **cfg}
    return Trainer(config=TrainConfig(**settings), data=data, progress=False, log=None)


def test_cosine_history_and_exact_resume(tiny_data, tmp_path):
    """The lr follows the cosine per step; stopping after epoch 1 and resuming
    gives exactly the weights of an uninterrupted run."""
    full = _trainer(tiny_data, lr=3e-3, lr_schedule="cosine")
    history = full.fit()
    steps = math.ceil(512 / 128)
    # lr at the last step of each epoch
    assert history[0]["lr"] == pytest.approx(lr_at(3e-3, "cosine", (steps - 1) / (2 * steps)))
    assert history[1]["lr"] == pytest.approx(lr_at(3e-3, "cosine", (2 * steps - 1) / (2 * steps)))
    # stop a 2-epoch run after its first epoch (as Ctrl-C would), then resume it
    two = _trainer(tiny_data, lr=3e-3, lr_schedule="cosine")
    with _InterruptFlag() as flag:
        two.history.append(two._run_epoch(1, flag))
    two.epoch = 1
    state = two.state_dict()
    assert state["lr_schedule"]["name"] == "cosine" and state["lr_schedule"]["epochs"] == 2
    resumed = _trainer(tiny_data, lr=3e-3, lr_schedule="cosine")
    resumed.load_state(state)
    resumed.fit()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_constant_schedule_keeps_lr(tiny_data):
    h = _trainer(tiny_data, epochs=1, lr=2e-3).fit()
    assert h[0]["lr"] == 2e-3


# ---------------------------------------------------------------- the hot path
def test_running_sums_match_a_plain_recomputation(tiny_data):
    """The device-side sums give the same per-epoch averages as per-step .item() calls."""
    t = _trainer(tiny_data, epochs=1, kl_warmup_epochs=2.0, log_every=3)
    seen = []
    step_fn = t._step_fn

    def spy(x, y, beta):
        out = step_fn(x, y, beta)
        seen.append((out[0].item(), out[1].item(), float(beta), len(x)))
        return out

    t._step_fn = spy
    h = t.fit()[0]
    n = sum(s[3] for s in seen)
    assert h["recon"] == pytest.approx(sum(s[0] for s in seen) / n, rel=1e-6)
    assert h["kl"] == pytest.approx(sum(s[1] for s in seen) / n, rel=1e-6)
    assert h["loss"] == pytest.approx(sum(s[0] + s[2] * s[1] for s in seen) / n, rel=1e-6)
    assert seen[0][2] == 0.0 and seen[-1][2] > 0  # the warm-up's beta grew within the epoch


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_step_still_stops_training(tiny_data, bad):
    t = _trainer(tiny_data, epochs=1, log_every=2)
    loss_terms, calls = t._loss_terms, []

    def poisoned(x, y):
        recon, kl, kl_for_loss = loss_terms(x, y)
        calls.append(1)
        if len(calls) == 2:  # the second step goes wrong
            recon = recon + bad
        return recon, kl, kl_for_loss

    t._loss_terms = poisoned
    with pytest.raises(TrainingDiverged, match=r"epoch 1, steps? (1-)?2\b"):
        t.fit()


def test_recommended_settings_are_valid_config_values():
    from dataclasses import fields

    from vae_course.train import recommended_settings

    rec = recommended_settings("vae")
    assert rec == {"lr": 5e-3, "lr_schedule": "cosine", "batch_size": 128}
    assert recommended_settings("conv-vae") == {}
    names = {f.name for f in fields(TrainConfig)}
    assert set(rec) <= names
    TrainConfig(**rec).validate()
    rec["lr"] = 1.0  # a fresh copy: changing it changes nothing for the next caller
    assert recommended_settings("vae")["lr"] == 5e-3
    with pytest.raises(TypeError):
        recommended_settings(None)
