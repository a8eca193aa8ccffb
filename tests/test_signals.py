"""Issue 16, class 3: every stop signal finishes the step, saves, prints one line, exits 128 + n.

Real signals throughout: os.kill on a real CLI process once it printed its first
epoch, or signal.raise_signal inside the real training loop.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from course_testing import ROOT, cli_env, history_without_timings, needs_mnist, run_cli
from vae_course.checkpoint import load_checkpoint
from vae_course.train import StopSignals, TrainConfig, Trainer, TrainingInterrupted

pytestmark = needs_mnist
ARGS = ["--limit-train", "2000", "--limit-test", "300", "--no-progress"]


def _start(out, epochs=50, extra=()):
    cmd = [sys.executable, "-m", "vae_course", "train", "--epochs", str(epochs), "--out", str(out), *ARGS, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)


def _wait_for_line(proc, prefix, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix) or not line:
            return line
    return ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_print_one_line_and_resume(tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(out)
    try:
        assert _wait_for_line(proc, "Epoch 1/50").startswith("Epoch 1/50")
        time.sleep(0.3)
        os.kill(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Resume with: python -m vae_course train --out" in lines[0], stderr
    assert f"({signal.Signals(sig).name})" in stdout
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["interrupted"] is True and state["epoch"] >= 1
    done = state["epoch"]
    p = run_cli("train", "--resume", "--epochs", str(done + 1), "--out", str(out), "--no-progress")
    assert p.returncode == 0, p.stderr
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())["history"]] == list(range(1, done + 2))


def test_a_closed_pipe_exits_quietly(tmp_path):
    proc = _start(tmp_path / "run", epochs=50)  # many epochs left: the pipe closes long before the end
    try:
        assert _wait_for_line(proc, "Epoch 1/50").startswith("Epoch 1/50")
        proc.stdout.close()  # what `| head -n 1` does after its line
        proc.wait(timeout=240)
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 141 and stderr.strip() == "", stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] >= 1  # the finished epoch was saved


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_is_one_line(tmp_path, sig):
    # The signal is raised while the data loads (before any training): a real signal, delivered
    # by the kernel to the real CLI; only its moment is chosen by wrapping load_data.
    code = (
        "import signal, sys\n"
        "import vae_course.train as vt\n"
        "from vae_course.cli import main\n"
        "real = vt.load_data\n"
        f"def loading(*a, **k):\n    signal.raise_signal({int(sig)})\n    return real(*a, **k)\n"
        "vt.load_data = loading\n"
        f"sys.exit(main(['train', '--epochs', '1', '--out', {str(tmp_path / 'run')!r}, '--no-progress']))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=cli_env(),
                       cwd=ROOT)
    assert p.returncode == 128 + sig, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ---------------------------------------------------------------- in process: the races
def _config(**kw):
    return TrainConfig(**{"epochs": 2, "batch_size": 128, "device": "cpu", "seed": 3, **kw})


class SignalInSave(Trainer):
    """A Trainer that receives real signals while its checkpoint is being saved."""

    signals_in_save: dict = {}

    def save(self, interrupted: bool = False):
        for sig in self.signals_in_save.get((self.epoch, interrupted), ()):
            signal.raise_signal(sig)
        return super().save(interrupted)


def test_a_signal_during_the_epoch_boundary_save_stops_before_the_next_epoch(tmp_path, tiny_data):
    one = Trainer(config=_config(epochs=1), data=tiny_data, out_dir=tmp_path / "one", progress=False, log=None)
    one.fit()
    t = SignalInSave(config=_config(), data=tiny_data, out_dir=tmp_path / "run", progress=False, log=None)
    t.signals_in_save = {(1, False): [signal.SIGINT]}
    with pytest.raises(TrainingInterrupted, match="Resume with") as info:
        t.fit()
    assert info.value.signum == signal.SIGINT
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 1  # not one step into epoch 2: the weights are epoch 1's
    for k, v in one.model.state_dict().items():
        assert torch.equal(state["model_state"][k], v), k


def test_a_second_signal_during_the_save_lets_the_save_finish(tmp_path, tiny_data):
    t = SignalInSave(config=_config(epochs=1), data=tiny_data, out_dir=tmp_path, progress=False, log=None)
    t.signals_in_save = {(0, True): [signal.SIGTERM, signal.SIGINT]}  # two more while saving the interruption
    calls = {"n": 0}

    def first_signal(module, args, output):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGTERM)
        return output

    t.model.fc1.register_forward_hook(first_signal)
    with pytest.raises(TrainingInterrupted) as info:
        t.fit()
    assert info.value.signum == signal.SIGTERM and "Saved" in str(info.value)
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # complete and loadable
    assert state["interrupted"] is True and state["epoch"] == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_stop_signals_mechanics_with_real_signals():
    with StopSignals() as stop:
        assert not stop.raised
        signal.raise_signal(signal.SIGHUP)
        assert stop.signum == signal.SIGHUP
        with stop.saving():
            signal.raise_signal(signal.SIGTERM)  # deferred: the save completes
        with pytest.raises(TrainingInterrupted) as info:
            signal.raise_signal(signal.SIGTERM)  # a second signal outside a save: stop at once
        assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_after_a_boundary_signal_is_bit_exact(tmp_path, tiny_data, monkeypatch):
    import vae_course.train as vt

    monkeypatch.setattr(vt, "load_data", lambda *a, **k: tiny_data)  # resume reloads "the dataset"
    one_go = Trainer(config=_config(), data=tiny_data, progress=False, log=None)
    one_go.fit()
    t = SignalInSave(config=_config(), data=tiny_data, out_dir=tmp_path, progress=False, log=None)
    t.signals_in_save = {(1, False): [signal.SIGTERM]}
    with pytest.raises(TrainingInterrupted):
        t.fit()
    resumed = Trainer.resume(tmp_path, progress=False, log=None)
    resumed.fit()
    assert history_without_timings(resumed.history) == history_without_timings(one_go.history)
    for (k, a), (_, b) in zip(one_go.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
