"""Issue 23, classes 3 and 4: one set of bounds (vae_course.bounds) for the command line,
the trainer and the loader, so what trains is what loads, and a bad value is one line.

The command line refuses a value out of range before anything is loaded (exit 2,
like any bad flag); the trainer refuses a combination over the parameter cap in one
line (exit 1); a run at the largest sizes the command line accepts writes a
checkpoint that ``evaluate`` loads. ``evaluate --iw-samples`` on a long job is
refused with its estimate (after a bounded probe), and on a plain autoencoder,
refused outright.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest

from course_testing import needs_mnist, run_cli
from vae_course.bounds import BOUNDS, MAX_MODEL_PARAMETERS, problem
from vae_course.checkpoint import CheckpointError, model_from_checkpoint, save_checkpoint
from vae_course.cli import build_parser
from vae_course.config import TrainConfig

def _train_flags() -> list[str]:
    """The TrainConfig settings the ``train`` command has a flag for, and a bound."""
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    dests = {a.dest for a in sub.choices["train"]._actions}
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name in BOUNDS and f.name in dests]


TRAINING_FLAGS = _train_flags()


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


# ---------------------------------------------------------------- one set of bounds
@pytest.mark.parametrize("name", TRAINING_FLAGS)
def test_the_command_line_and_the_trainer_refuse_the_same_values(name, capsys):
    bound = BOUNDS[name]
    # one past the end (the float settings without an upper end: infinity, refused by both)
    too_big = int(bound.high) + 1 if bound.integer else bound.high * 2 if math.isfinite(bound.high) else math.inf
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", f"--{name.replace('_', '-')}", str(too_big)])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: too_big}).validate()
    if bound.integer:  # and the largest value allowed passes both (alone; the parameter cap is separate)
        highest = str(int(bound.high))
        args = build_parser().parse_args(["train", f"--{name.replace('_', '-')}", highest])
        assert getattr(args, name) == int(bound.high)
        if name not in ("hidden_dim",):
            TrainConfig(**{name: int(bound.high)}).validate()


@pytest.mark.parametrize("size, value", [("latent_dim", 4097), ("latent_dim", 10**6), ("hidden_dim", 65_537),
                                         ("hidden_dim", 40_000), ("num_classes", 1)])
def test_the_loader_refuses_what_the_trainer_refuses(size, value):
    """A checkpoint describing a model the trainer would refuse is refused, before the
    model is built (on the meta device), with the same range in the message."""
    from vae_course.models import CVAE

    model = CVAE(latent_dim=4, hidden_dim=16)
    state = {"format_version": 2, "model_name": "cvae", "model_config": {**model.config, size: value},
             "model_state": model.state_dict(), "epoch": 0, "history": []}
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(state)
    message = str(info.value)
    assert (f"{size} should be an integer from {int(BOUNDS[size].low)} to {int(BOUNDS[size].high)}" in message
            or f"over this vae_course's limit of {MAX_MODEL_PARAMETERS:,}" in message), message
    if size != "num_classes":
        with pytest.raises(ValueError) as trainer_info:
            TrainConfig(model="vae", latent_dim=value if size == "latent_dim" else 4,
                        hidden_dim=value if size == "hidden_dim" else 16).validate()
        assert "4096" in str(trainer_info.value) or "65536" in str(trainer_info.value) \
            or "parameters" in str(trainer_info.value)


def test_problems_are_one_line_for_any_value():
    for value in (10**400, 10**5000, -1, "7", None, [1], float("nan"), True):
        message = problem("seed", value)
        assert message.startswith("seed: must be an integer from 0 to 4294967295") and "\n" not in message
        assert len(message) < 200
    assert problem("seed", 2**32 - 1) is None and problem("lr", 1e-3) is None


# ---------------------------------------------------------------- the command line (subprocesses)
@pytest.mark.parametrize("flags, code, words", [
    (["--latent-dim", "5000"], 2, "--latent-dim: expected an integer from 1 to 4096, got 5000"),
    (["--latent-dim", str(10**6)], 2, "--latent-dim: expected an integer from 1 to 4096"),
    (["--latent-dim", str(10**9)], 2, "--latent-dim: expected an integer from 1 to 4096"),
    (["--seed", str(2**64)], 2, "--seed: expected an integer from 0 to 4294967295"),
    (["--epochs", str(10**400)], 2, "--epochs: expected an integer from 1 to 10000"),
    (["--hidden-dim", "33000"], 1, "parameters, over this vae_course's limit of 50,000,000"),
])
def test_train_refuses_a_bad_size_in_one_line_before_anything_is_done(flags, code, words, tmp_path):
    proc = run_cli("train", *flags, "--out", str(tmp_path / "run"), "--no-progress", timeout=120)
    assert proc.returncode == code and words in _one_error_line(proc)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A trained MLP VAE (784-400-20, the course's seed model) after one short epoch."""
    out = tmp_path_factory.mktemp("bounds") / "run"
    proc = run_cli("train", "--epochs", "1", "--limit-train", "256", "--limit-test", "64", "--device", "cpu",
                   "--out", str(out), "--no-progress", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "checkpoint.pt"


@needs_mnist
def test_the_largest_sizes_the_command_line_accepts_train_and_load(tmp_path):
    out = tmp_path / "wide"
    proc = run_cli("train", "--latent-dim", "4096", "--hidden-dim", "16", "--epochs", "1", "--limit-train", "64",
                   "--limit-test", "32", "--batch-size", "64", "--device", "cpu", "--out", str(out),
                   "--no-progress", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--limit-test", "16", "--device", "cpu",
                   timeout=300)
    assert proc.returncode == 0 and "Test ELBO:" in proc.stdout, proc.stderr[-2000:]


@needs_mnist
def test_evaluate_refuses_a_k_beyond_the_bound_and_announces_or_refuses_by_its_probe(small_run):
    proc = run_cli("evaluate", "--checkpoint", str(small_run), "--iw-samples", str(10**9), timeout=120)
    assert proc.returncode == 2 and "--iw-samples: expected an integer from 0 to 1000000" in _one_error_line(proc)
    # K = 1,000,000 on all 10,000 test images: 10^10 decoder passes of a 784-400-20 decoder, far
    # over ten minutes on any machine; the probe says so, and what to do, without running it
    proc = run_cli("evaluate", "--checkpoint", str(small_run), "--iw-samples", "1000000", "--device", "cpu",
                   timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = _one_error_line(proc)
    assert "would take about" in line and "--sample-test" in line and "--allow-long" in line
    assert "Test ELBO:" in proc.stdout  # the ELBO (seconds) was reported first
    proc = run_cli("evaluate", "--checkpoint", str(small_run), "--iw-samples", "5", "--limit-test", "20",
                   "--device", "cpu", timeout=300)
    assert proc.returncode == 0 and "IWAE NLL (K=5):" in proc.stdout, proc.stderr[-2000:]
    assert "IWAE estimate: K=5 on 20 images, about" in proc.stderr


@needs_mnist
def test_evaluate_refuses_iw_samples_for_a_plain_autoencoder_and_an_empty_train_config(small_run, tmp_path):
    from vae_course.checkpoint import load_checkpoint
    from vae_course.models import Autoencoder

    model = Autoencoder(latent_dim=2, hidden_dim=16)
    ae = save_checkpoint({"format_version": 2, "model_name": "ae", "model_config": dict(model.config),
                          "model_state": model.state_dict(), "epoch": 0, "history": [],
                          "train_config": dataclasses.asdict(TrainConfig(model="ae", latent_dim=2, hidden_dim=16))},
                         tmp_path / "ae.pt")
    proc = run_cli("evaluate", "--checkpoint", str(ae), "--iw-samples", "100", timeout=120)
    assert proc.returncode == 1 and "a plain autoencoder ('ae') defines no p(x)" in _one_error_line(proc)
    state = copy.deepcopy(load_checkpoint(small_run))
    state["train_config"] = {}
    empty = save_checkpoint(state, tmp_path / "empty.pt")
    proc = run_cli("evaluate", "--checkpoint", str(empty), timeout=120)
    assert proc.returncode == 1 and "train_config has no 'model' setting" in _one_error_line(proc)
