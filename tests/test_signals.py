"""Issue 16, class 3: every stop signal finishes the step, saves, prints one line, exits 128 + n.
Issue 23, classes 6 and 7: the printed command is safe to paste and resumes the run; one line and
128 + n from the first instant (while torch imports), after training (while the images are
written), during evaluate, and through `make train`.

Real signals throughout: os.kill on a real CLI process once it printed its first
epoch, or signal.raise_signal inside the real process at a moment chosen by wrapping
one of its functions (an import hook for "while torch imports").
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    assert len(lines) == 1 and "Resume with: " in lines[0], stderr
    assert (stdout + stderr).count("Saved") == 1 and (stdout + stderr).count("Resume with") == 1  # said once
    assert f"({signal.Signals(sig).name})" in stdout
    assert shlex.split(lines[0].split("Resume with: ", 1)[1])[:3] == [sys.executable, "-m", "vae_course"]
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


# ---------------------------------------------------------------- issue 23, class 6: pasting the command
HOSTILE_NAME = "my run;touch PWNED;$(touch PWNED2)"  # a space, a second command, a substitution
SMALL = ["--limit-train", "256", "--limit-test", "100", "--no-progress"]


def _resume_line(stderr: str) -> str:
    found = re.findall(r"Resume with: (.*)$", stderr, flags=re.M)
    assert len(found) == 1, stderr
    return found[0]


def test_the_printed_resume_command_pasted_into_a_shell_resumes_and_runs_nothing_else(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "vae_course", "train", "--epochs", "40", "--out", HOSTILE_NAME, *SMALL]
    env = cli_env(PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    try:
        assert _wait_for_line(proc, "Epoch 1/40").startswith("Epoch 1/40")
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    line = _resume_line(stderr)
    done = load_checkpoint(work / HOSTILE_NAME / "checkpoint.pt")["epoch"]
    assert 1 <= done < 40
    # pasted as it is, into a real shell, in the folder the run started from
    pasted = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert pasted.returncode == 0, pasted.stderr
    assert sorted(p.name for p in work.rglob("PWNED*")) == [], "the pasted command ran a second command"
    assert not list(tmp_path.rglob("PWNED*")) and not (ROOT / "PWNED").exists()
    history = json.loads((work / HOSTILE_NAME / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 41))  # the same run, continued to the end


# ---------------------------------------------------------------- issue 23, class 7: the first instant
HOOK = """\
import os, signal, sys
class _RaiseAtTorchImport:
    # A real signal, raised by the kernel's delivery path, at the moment torch starts importing.
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            signal.raise_signal(int(os.environ["RAISE_AT_TORCH_IMPORT"]))
        return None
if os.environ.get("RAISE_AT_TORCH_IMPORT"):
    sys.meta_path.insert(0, _RaiseAtTorchImport())
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_while_torch_imports_is_one_line_and_128_plus_n(tmp_path, sig):
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    env = cli_env(PYTHONPATH=str(tmp_path / "hook"), RAISE_AT_TORCH_IMPORT=str(int(sig)))
    p = subprocess.run([sys.executable, "-m", "vae_course", "train", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert p.returncode == 128 + sig, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and sig.name in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A finished 1-epoch run (256 images) that the tests below copy."""
    out = tmp_path_factory.mktemp("one") / "run"
    p = run_cli("train", "--epochs", "1", "--out", str(out), *SMALL)
    assert p.returncode == 0, p.stderr
    return out


def _main_with_signal_in(function: str, sig: int, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``vae_course.cli.main(argv)`` in a fresh process whose ``cli.<function>`` first raises ``sig``."""
    code = ("import signal, sys\n"
            "import vae_course.cli as cli\n"
            f"real = cli.{function}\n"
            f"def wrapped(*a, **k):\n    signal.raise_signal({int(sig)})\n    return real(*a, **k)\n"
            f"cli.{function} = wrapped\n"
            f"sys.exit(cli.main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=cli_env(),
                          cwd=ROOT)


def test_a_signal_while_the_images_are_written_says_training_is_saved(tmp_path, one_epoch_run):
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run, out)
    for image in ("samples.png", "reconstructions.png"):
        (out / image).unlink()
    # --resume to the epochs it has: nothing to train, straight to the images, where SIGTERM lands
    p = _main_with_signal_in("save_grid", signal.SIGTERM,
                             ["train", "--resume", "--epochs", "1", "--out", str(out), "--no-progress"])
    assert p.returncode == 143, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "after training" in lines[0] and "holds all 1 epochs" in lines[0], p.stderr
    assert "before" not in lines[0] and "nothing" not in lines[0]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    again = lines[0].split("To write the images, run: ", 1)[1]
    done = subprocess.run(["bash", "-c", again], capture_output=True, text=True, timeout=240, env=cli_env(),
                          cwd=ROOT)
    assert done.returncode == 0 and (out / "samples.png").is_file(), done.stderr


def test_evaluate_interrupted_says_nothing_was_written(one_epoch_run):
    p = _main_with_signal_in("evaluate_elbo", signal.SIGINT,
                             ["evaluate", "--checkpoint", str(one_epoch_run / "checkpoint.pt"), "--limit-test", "50"])
    assert p.returncode == 130, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "during evaluate" in lines[0] and "trained" not in lines[0], p.stderr


def test_the_same_signal_forwarded_twice_is_one_request(tmp_path, tiny_data):
    """make and torchrun pass on a SIGTERM the process already got: the step still finishes and
    the run is saved mid-epoch, instead of the "second signal: stop at once" path."""
    t = Trainer(config=_config(epochs=1), data=tiny_data, out_dir=tmp_path, progress=False, log=None)
    calls = {"n": 0}

    def forwarded(module, args, output):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGTERM)  # from the job system ...
            signal.raise_signal(signal.SIGTERM)  # ... and again from the launcher
        return output

    t.model.fc1.register_forward_hook(forwarded)
    with pytest.raises(TrainingInterrupted, match="Saved") as info:
        t.fit()
    assert info.value.signum == signal.SIGTERM
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["interrupted"] is True and state["epoch"] == 0


# ---------------------------------------------------------------- make train: the code, without make's noise
def _descendant_pids(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _trainer_pid(make_pid: int) -> int:
    for pid in _descendant_pids(make_pid):
        try:
            if b"vae_course" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2:4]:
                return pid
        except OSError:
            continue
    raise AssertionError("no trainer process under make")


@pytest.mark.skipif(shutil.which("make") is None or not Path("/proc/self/stat").exists(),
                    reason="needs GNU make and /proc")
@pytest.mark.parametrize("how", ["SIGTERM to the trainer", "Ctrl-C to the terminal's process group"])
def test_make_train_passes_a_clean_stop_through_without_an_error_line(tmp_path, how):
    out = tmp_path / "run"
    args = f"--epochs 40 --out {out} " + " ".join(SMALL)
    # -o: take the environment's stamp as up to date (never reinstall from a test)
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.lab-stamp", "train", f"ARGS={args}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT,
                            start_new_session=True)
    try:
        assert _wait_for_line(proc, "Epoch 1/40").startswith("Epoch 1/40")
        if how.startswith("SIGTERM"):
            os.kill(_trainer_pid(proc.pid), signal.SIGTERM)
            sig = signal.SIGTERM
        else:
            os.killpg(proc.pid, signal.SIGINT)
            sig = signal.SIGINT
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # make itself ends by the signal, as a shell reports it: `make train; echo $?` prints 128 + n
    assert proc.returncode == -sig, (proc.returncode, stderr)
    assert "make:" not in stderr and "Error" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Resume with: " in stderr, stderr
    assert load_checkpoint(out / "checkpoint.pt")["interrupted"] is True
