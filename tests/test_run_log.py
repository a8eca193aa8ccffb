"""A long run's bookkeeping: the test set kept unseen during training, the best
validation epoch kept as ``best.pt``, and the diary (``sessions.jsonl``) of every
start, resume and stop."""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest
import torch

from course_testing import run_cli
from vae_course.checkpoint import epoch_of, history_of, load_checkpoint
from vae_course.data import DataSplits
from vae_course.run_log import LOG_NAME, append_event, read_events
from vae_course.signals import TrainingInterrupted
from vae_course.train import TrainConfig, Trainer


@pytest.fixture
def split_data(mnist_small):
    """300 training, 100 validation and 100 test images."""
    d = mnist_small
    return DataSplits(d.name, d.binarize, d.seed, d.train_x[:300], d.train_y[:300],
                      d.train_x[300:400], d.train_y[300:400], d.test_x[:100], d.test_y[:100])


def _trainer(data, out=None, log=None, **cfg):
    settings = {"epochs": 2, "batch_size": 64, "device": "cpu", "seed": 1, "val_size": 100, **cfg}
    return Trainer(config=TrainConfig(**settings), data=data, out_dir=out, progress=False, log=log)


# ------------------------------------------------------------------ the test set kept unseen
def test_keep_test_unseen_evaluates_validation_only_and_logs_it(split_data):
    lines = []
    history = _trainer(split_data, keep_test_unseen=True,
                       log=lambda *a: lines.extend(" ".join(map(str, a)).splitlines())).fit()
    for record in history:
        assert not [k for k in record if k.startswith("test_")], record
        assert {"val_loss", "val_elbo", "val_recon", "val_kl"} <= set(record)
    assert [ln.split(":")[0] for ln in lines[:5]] == [
        "Epoch 1/2", "Loss", "Reconstruction Loss", "KL Divergence", "Validation Loss"]


def test_without_the_flag_both_splits_are_evaluated(split_data):
    record = _trainer(split_data, epochs=1).fit()[0]
    assert "test_loss" in record and "val_loss" in record


def test_the_weights_do_not_depend_on_watching_the_test_set(split_data):
    """Evaluation draws from its own generator: leaving the test set out changes no weight."""
    watched = _trainer(split_data)
    watched.fit()  # each trainer seeds the global generator when built: build the second after
    unseen = _trainer(split_data, keep_test_unseen=True)
    unseen.fit()
    for a, b in zip(watched.model.parameters(), unseen.model.parameters()):
        assert torch.equal(a, b)


def test_keep_test_unseen_needs_a_validation_split():
    with pytest.raises(ValueError, match=r"keep_test_unseen: .*--val-size"):
        TrainConfig(keep_test_unseen=True).validate()
    with pytest.raises(ValueError, match="keep_test_unseen: must be True or False"):
        TrainConfig(keep_test_unseen="yes", val_size=10).validate()


def test_the_cli_refuses_the_flag_without_a_validation_split(tmp_path):
    p = run_cli("train", "--keep-test-unseen", "--epochs", "1", "--limit-train", "200", "--out", str(tmp_path / "r"))
    assert p.returncode == 1 and "--val-size" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_keep_test_unseen_is_fixed_on_resume(split_data, tmp_path):
    _trainer(split_data, out=tmp_path, epochs=1, keep_test_unseen=True).fit()
    with pytest.raises(ValueError, match="--keep-test-unseen"):
        Trainer.resume(tmp_path, progress=False, log=None, keep_test_unseen=False, epochs=2)


# ------------------------------------------------------------------ early stopping's checkpoint
def test_best_pt_holds_the_epoch_with_the_lowest_validation_loss(split_data, tmp_path):
    trainer = _trainer(split_data, out=tmp_path, epochs=4, keep_test_unseen=True, lr=3e-3)
    history = trainer.fit()
    best = min(history, key=lambda h: h["val_loss"])
    state = load_checkpoint(tmp_path / "best.pt")
    assert epoch_of(state) == best["epoch"]
    assert history_of(state)[-1]["val_loss"] == best["val_loss"]


def test_best_pt_is_not_replaced_by_a_worse_epoch(split_data, tmp_path):
    trainer = _trainer(split_data, out=tmp_path, epochs=1, keep_test_unseen=True)
    trainer.fit()
    before = (tmp_path / "best.pt").read_bytes()
    trainer.history[-1]["val_loss"] = -1e30  # no later epoch can beat this one
    trainer.fit(2)
    assert (tmp_path / "best.pt").read_bytes() == before
    assert epoch_of(load_checkpoint(tmp_path / "checkpoint.pt")) == 2


def test_no_best_pt_without_a_validation_split(tiny_data, tmp_path):
    Trainer(config=TrainConfig(epochs=1, device="cpu"), data=tiny_data, out_dir=tmp_path, progress=False,
            log=None).fit()
    assert not (tmp_path / "best.pt").exists() and (tmp_path / "checkpoint.pt").exists()


# ------------------------------------------------------------------ the diary
def test_the_diary_records_start_stop_resume_and_finish(split_data, tmp_path):
    trainer = _trainer(split_data, out=tmp_path, epochs=2, keep_test_unseen=True)
    original = trainer._log_epoch

    def stop_after_first_epoch(record):  # as a SIGTERM arriving at the end of epoch 1 would
        original(record)
        signal.raise_signal(signal.SIGTERM)

    trainer._log_epoch = stop_after_first_epoch
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    Trainer.resume(tmp_path, progress=False, log=None).fit()
    events = read_events(tmp_path)
    assert [(e["event"], e["epoch"]) for e in events] == [
        ("start", 0), ("interrupted", 1), ("resume", 1), ("finished", 2)]
    assert events[1]["signal"] == "SIGTERM"
    for event in (events[0], events[2]):
        assert event["device"] == f"cpu ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''})"
        assert event["torch"] == torch.__version__ and isinstance(event["dirty"], bool)
        assert len(event["commit"]) == 40 and "utc" in event


def test_the_cli_diary_names_the_command_as_typed(tmp_path):
    out = tmp_path / "run"
    p = run_cli("train", "--epochs", "1", "--limit-train", "200", "--limit-test", "50", "--out", str(out),
                "--no-progress")
    assert p.returncode == 0, p.stderr
    start = read_events(out)[0]
    assert start["command"].startswith(f"{sys.executable} -m vae_course train --epochs 1"), start


def test_overwrite_starts_a_new_diary(tmp_path):
    out = tmp_path / "run"
    for extra in ([], ["--overwrite"]):
        p = run_cli("train", "--epochs", "1", "--limit-train", "200", "--limit-test", "50", "--out", str(out),
                    "--no-progress", *extra)
        assert p.returncode == 0, p.stderr
    assert [e["event"] for e in read_events(out)] == ["start", "finished"]


def test_a_damaged_diary_line_is_skipped_not_fatal(tmp_path):
    append_event(tmp_path, "start", 0)
    with open(tmp_path / LOG_NAME, "a", encoding="utf-8") as f:
        f.write('{"event": "interr')  # a kill in the middle of a write
    append_event(tmp_path, "resume", 3)
    lines = (tmp_path / LOG_NAME).read_text().splitlines()
    assert len(lines) == 3 and lines[1] == '{"event": "interr'  # the cut line stays on its own line
    assert [e["event"] for e in read_events(tmp_path)] == ["start", "resume"]


def test_the_diary_is_never_written_through_a_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    folder = tmp_path / "run"
    folder.mkdir()
    os.symlink(outside, folder / LOG_NAME)
    with pytest.raises(OSError):
        append_event(folder, "start", 0)
    os.unlink(folder / LOG_NAME)
    os.link(outside, folder / LOG_NAME)  # a hard link: the same file under a second name
    with pytest.raises(OSError, match="one name"):
        append_event(folder, "start", 0)
    assert outside.read_text() == "mine\n"
