"""The Trainer: the seed's log, history, configuration checks, reproducibility, and the
learning-rate schedule across an exact resume."""
from __future__ import annotations

import math
import shutil
import sys

import pytest
import torch

from course_testing import history_without_timings
from vae_course.train import StopSignals, TrainConfig, Trainer, lr_at, train_model


def _trainer(data, log=None, **cfg):
    settings = {"epochs": 1, "batch_size": 128, "device": "cpu", "seed": 1, **cfg}
    return Trainer(config=TrainConfig(**settings), data=data, progress=False, log=log)


def test_fit_prints_the_seed_lines_and_loss_is_recon_plus_beta_kl(tiny_data):
    lines = []
    t = _trainer(tiny_data, log=lambda *a: lines.extend(" ".join(map(str, a)).splitlines()), epochs=2, beta=0.5)
    history = t.fit()
    assert [ln.split(":")[0] for ln in lines] == [
        "Epoch 1/2", "Loss", "Reconstruction Loss", "KL Divergence", "Test Loss"] * 1 + [
        "Epoch 2/2", "Loss", "Reconstruction Loss", "KL Divergence", "Test Loss"]
    for h in history:
        assert math.isclose(h["loss"], h["recon"] + 0.5 * h["kl"], rel_tol=1e-6)
        assert math.isclose(h["test_loss"], h["test_recon"] + 0.5 * h["test_kl"], rel_tol=1e-6)
        assert math.isclose(h["test_elbo"], -(h["test_recon"] + h["test_kl"]), rel_tol=1e-6)
        assert h["seconds"] > 0 and h["images_per_second"] > 0 and h["beta"] == 0.5
    assert history[1]["loss"] < history[0]["loss"]  # it learns
    assert t.epoch == 2


def test_history_keys_and_validation_split(mnist_small):
    from vae_course.data import DataSplits

    d = mnist_small
    data = DataSplits(d.name, d.binarize, d.seed, d.train_x[:300], d.train_y[:300],
                      d.train_x[300:400], d.train_y[300:400], d.test_x[:100], d.test_y[:100])
    h = _trainer(data, val_size=100).fit()[0]
    for key in ("epoch", "loss", "recon", "kl", "beta", "seconds", "cpu_seconds", "images_per_second", "test_loss",
                "test_recon", "test_kl", "test_elbo", "test_elbo_stderr", "val_loss", "val_elbo"):
        assert key in h, key


@pytest.mark.parametrize("model", ["ae", "cvae", "conv-vae"])
def test_every_model_trains(tiny_data, model):
    h = _trainer(tiny_data, model=model, latent_dim=4, limit_train=None).fit()[0]
    assert math.isfinite(h["loss"])
    if model == "ae":
        assert h["kl"] == 0.0


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_compile_trains_including_the_short_last_batch(tiny_data):
    # 300 images at batch 128: two full batches and a short one of 44, which once made
    # torch.compile switch to a symbolic batch size and crash.
    from vae_course.data import DataSplits

    d = tiny_data
    data = DataSplits(d.name, d.binarize, d.seed, d.train_x[:300], d.train_y[:300], d.val_x, d.val_y,
                      d.test_x, d.test_y)
    compiled = _trainer(data, compile=True, epochs=2).fit()[-1]  # the crash came in epoch 2
    eager = _trainer(data, epochs=2).fit()[-1]
    # Compiled code draws its own random numbers, so the losses agree closely, not exactly.
    assert math.isfinite(compiled["loss"]) and abs(compiled["loss"] - eager["loss"]) < 0.05 * eager["loss"]


def test_same_seed_same_numbers_different_seed_different_numbers(tiny_data):
    a = history_without_timings(_trainer(tiny_data, seed=5).fit())
    b = history_without_timings(_trainer(tiny_data, seed=5).fit())
    c = history_without_timings(_trainer(tiny_data, seed=6).fit())
    assert a == b
    assert a != c


def test_kl_warmup_and_free_bits(tiny_data):
    t = _trainer(tiny_data, kl_warmup_epochs=2, beta=1.0)
    assert t.beta_at(0) == 0 and t.beta_at(1) == 0.5 and t.beta_at(5) == 1.0
    h = _trainer(tiny_data, free_bits=0.5).fit()[0]
    assert math.isfinite(h["loss"])


def test_fit_with_more_epochs_continues(tiny_data):
    t = _trainer(tiny_data)
    t.fit()
    t.fit(epochs=2)
    assert [h["epoch"] for h in t.history] == [1, 2]


def test_train_function_and_unknown_settings(tiny_data, monkeypatch):
    vt = sys.modules["vae_course.train"]

    monkeypatch.setattr(vt, "load_data", lambda *a, **k: tiny_data)
    t = train_model(TrainConfig(device="cpu", epochs=1), limit_train=512)
    assert len(t.history) == 1
    with pytest.raises(ValueError, match="learning_rate: not a training setting"):
        train_model(learning_rate=0.1)


@pytest.mark.parametrize("kwargs, arg", [
    ({"epochs": 0}, "epochs"), ({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"latent_dim": 0}, "latent_dim"), ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"lr": True}, "lr"), ({"beta": -1}, "beta"), ({"beta": float("inf")}, "beta"),
    ({"seed": -2}, "seed"), ({"limit_train": 0}, "limit_train"), ({"val_size": -1}, "val_size"),
    ({"hidden_dim": 2.5}, "hidden_dim"), ({"model": "gan"}, "model"), ({"dataset": "cifar"}, "dataset"),
    ({"binarize": "maybe"}, "binarize"), ({"device": "tpu"}, "device"), ({"free_bits": -0.1}, "free_bits"),
    ({"epochs": "10"}, "epochs"), ({"log_every": 0}, "log_every"),
])
def test_bad_settings_are_named_before_any_data_is_loaded(kwargs, arg, monkeypatch):
    vt = sys.modules["vae_course.train"]

    monkeypatch.setattr(vt, "load_data", lambda *a, **k: pytest.fail("data loaded before validation"))
    with pytest.raises(ValueError, match=arg):
        Trainer(config=TrainConfig(**kwargs), progress=False, log=None)


def test_cuda_request_without_a_gpu_is_a_clear_error(tiny_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="device: CUDA was requested"):
        Trainer(config=TrainConfig(device="cuda"), data=tiny_data, progress=False, log=None)


# ---------------------------------------------------------------- the loop a learner reads
def _batches_of(data, batch_size=64):
    from vae_course.data import tensor_batches

    return tensor_batches(data.train_x, data.train_y, batch_size, generator=torch.Generator().manual_seed(0))


def test_train_epoch_sums_match_a_plain_recomputation(tiny_data):
    """The device-side sums give the same totals as per-step .item() calls, also
    with a beta that changes at every step (KL warm-up)."""
    from vae_course.losses import objective_terms
    from vae_course.models import build_model
    from vae_course.train import train_epoch

    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4, hidden_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen, checks = [], []

    def spy(model, x, y, free_bits):
        recon, kl, kl_for_loss = objective_terms(model, x, y, free_bits)
        seen.append((recon.sum().item(), kl.sum().item(), len(x)))
        return recon, kl, kl_for_loss

    sums = train_epoch(model, optimizer, _batches_of(tiny_data), objective=spy, beta=lambda step: step / 8,
                       check_every=3, on_check=lambda done, s: checks.append(done))
    loss, recon, kl = sums.totals().tolist()
    assert sums.count == sum(s[2] for s in seen) == len(tiny_data.train_x) and not sums.stopped
    assert recon == pytest.approx(sum(s[0] for s in seen), rel=1e-6)
    assert kl == pytest.approx(sum(s[1] for s in seen), rel=1e-6)
    assert loss == pytest.approx(sum(s[0] + i / 8 * s[1] for i, s in enumerate(seen)), rel=1e-6)
    assert checks == [3, 6, 8]  # every 3 steps, and after the last (8 steps of 64)


def test_train_epoch_stops_when_asked_and_learns(tiny_data):
    from vae_course.models import build_model
    from vae_course.train import train_epoch

    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4, hidden_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    calls = []
    stopped = train_epoch(model, optimizer, _batches_of(tiny_data), should_stop=lambda: len(calls.append(1) or calls) >= 2)
    assert stopped.stopped and stopped.count == 128  # two steps of 64, then it stopped
    first = train_epoch(model, optimizer, _batches_of(tiny_data)).totals()[0].item()
    second = train_epoch(model, optimizer, _batches_of(tiny_data)).totals()[0].item()
    assert second < first


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_step_stops_training(tiny_data, bad):
    from vae_course.train import TrainingDiverged

    t = _trainer(tiny_data, epochs=1, log_every=2)
    objective, calls = t.objective, []

    def poisoned(model, x, y, free_bits):
        recon, kl, kl_for_loss = objective(model, x, y, free_bits)
        calls.append(1)
        return (recon + bad if len(calls) == 2 else recon), kl, kl_for_loss  # the second step goes wrong

    t.objective = poisoned
    with pytest.raises(TrainingDiverged, match=r"epoch 1, steps? (1-)?2\b"):
        t.fit()


def test_the_callers_config_is_never_changed(tiny_data):
    config = TrainConfig(epochs=1, device="cpu")
    t = Trainer(config=config, data=tiny_data, progress=False, log=None)
    t.fit(epochs=2)
    assert config.epochs == 1 and t.config.epochs == 2 and t.config is not config


@pytest.mark.parametrize("setting, words", [
    ({"dataset": "fashion-mnist"}, "dataset 'mnist' vs config.dataset 'fashion-mnist'"),
    ({"binarize": "dynamic"}, "binarize 'none' vs config.binarize 'dynamic'"),
    ({"limit_train": 100}, "512 images vs config.limit_train=100"),
    ({"val_size": 10}, "0 validation images vs config.val_size=10"),
])
def test_data_that_contradicts_the_config_is_an_error(tiny_data, setting, words):
    with pytest.raises(ValueError, match="data: does not match the config") as info:
        _trainer(tiny_data, **setting)
    assert words in str(info.value)


def test_a_model_of_another_kind_is_an_error(tiny_data):
    from vae_course.models import build_model

    with pytest.raises(ValueError, match="'cvae' model was given but config.model is 'vae'"):
        Trainer(config=TrainConfig(device="cpu"), model=build_model("cvae"), data=tiny_data, progress=False)


# ---------------------------------------------------------------- the LR schedule in training
def test_cosine_history_and_exact_resume(tiny_data, tmp_path):
    """The lr follows the cosine per step; stopping after epoch 1 and resuming
    gives exactly the weights of an uninterrupted run."""
    full = _trainer(tiny_data, epochs=2, lr=3e-3, lr_schedule="cosine")
    history = full.fit()
    steps = math.ceil(512 / 128)
    # lr at the last step of each epoch
    assert history[0]["lr"] == pytest.approx(lr_at(3e-3, "cosine", (steps - 1) / (2 * steps)))
    assert history[1]["lr"] == pytest.approx(lr_at(3e-3, "cosine", (2 * steps - 1) / (2 * steps)))
    # stop a 2-epoch run after its first epoch (as Ctrl-C would), then resume it
    two = _trainer(tiny_data, epochs=2, lr=3e-3, lr_schedule="cosine")
    with StopSignals() as flag:
        two.history.append(two._run_epoch(1, flag))
    two.epoch = 1
    state = two.state_dict()
    assert state["lr_schedule"]["name"] == "cosine" and state["lr_schedule"]["epochs"] == 2
    resumed = _trainer(tiny_data, epochs=2, lr=3e-3, lr_schedule="cosine")
    resumed.load_state(state)
    resumed.fit()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_constant_schedule_keeps_lr(tiny_data):
    h = _trainer(tiny_data, epochs=1, lr=2e-3).fit()
    assert h[0]["lr"] == 2e-3
