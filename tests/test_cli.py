"""The command line, end to end: the seed's lines, the files, --help, and one-line errors."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

import torch

from course_testing import cli_env, needs_mnist, run_cli
from vae_course.cli import build_parser, main


@needs_mnist
def test_train_prints_the_seed_lines_and_writes_the_files(cli_two_epochs):
    proc, out = cli_two_epochs
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    pattern = [r"Epoch {e}/2", r"Loss: \d+\.\d\d", r"Reconstruction Loss: \d+\.\d\d",
               r"KL Divergence: \d+\.\d\d", r"Test Loss: \d+\.\d\d"]
    expected = [p.format(e=e) for e in (1, 2) for p in pattern]
    assert len(lines) == 11, proc.stdout
    for line, pat in zip(lines, expected):
        assert re.fullmatch(pat, line), (line, pat)
    assert lines[-1] == f"Generated new images successfully: {out / 'samples.png'}"
    for e in (0, 1):
        loss, recon, kl = (float(lines[5 * e + i].split(": ")[1]) for i in (1, 2, 3))
        assert abs(loss - (recon + kl)) <= 0.011  # beta = 1, each printed to 2 decimals
    for name in ("checkpoint.pt", "metrics.json", "samples.png", "reconstructions.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert f"{metrics['history'][1]['test_loss']:.2f}" == lines[9].split(": ")[1]
    assert metrics["config"]["limit_train"] == 2000
    assert "Traceback" not in proc.stderr


@needs_mnist
def test_evaluate_reports_elbo_and_iwae(cli_two_epochs, capsys):
    _, out = cli_two_epochs
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--iw-samples", "20",
                 "--limit-test", "50", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_test"] == 50 and result["iw_samples"] == 20 and result["epochs"] == 2
    assert result["label"] == "BCE bound on grayscale pixels, not a likelihood"
    # the IWAE estimate of -log p(x) is (statistically) below the ELBO's bound
    assert result["iwae_nll"] < -result["test_elbo"] + 3 * result["test_elbo_stderr"]
    assert result["iwae_seconds"] >= 0 and result["iwae_cpu_seconds"] >= 0  # what the estimate cost
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--iw-samples", "5",
                 "--limit-test", "20", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "Test ELBO:" in text and "IWAE NLL (K=5):" in text and "not a likelihood" in text


@needs_mnist
def test_evaluate_sample_test_draws_a_fixed_random_subset(cli_two_epochs, capsys):
    _, out = cli_two_epochs
    args = ["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--iw-samples", "2", "--device", "cpu", "--json"]
    assert main(args + ["--sample-test", "40"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args + ["--sample-test", "40"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert first["n_test"] == 40 and first["test_images"] == "40 drawn at random (seed 0)"
    assert first["test_elbo"] == again["test_elbo"]  # the same images (and the same fixed noise) each time
    assert main(args + ["--limit-test", "40"]) == 0
    head = json.loads(capsys.readouterr().out)
    assert head["test_images"] == "first 40" and head["test_elbo"] != first["test_elbo"]
    assert main(args + ["--sample-test", "10001"]) == 1
    assert "more than the 10000 test images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # one or the other, not both
        main(args + ["--sample-test", "5", "--limit-test", "5"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["bench"], ["launch"]])
def test_help_explains_every_flag(command, capsys):
    parser = build_parser()
    if command == ["bench"] and "bench" not in parser.format_help():
        pytest.skip("no bench subcommand")
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "usage:" in text
    sub = {a.dest: a for a in parser._subparsers._group_actions[0].choices.get(command[0]).__dict__["_actions"]} \
        if command else {}
    for dest, action in sub.items():
        if action.option_strings and dest != "help":
            assert action.help, f"{command[0]} {action.option_strings} has no help text"
            assert action.option_strings[0] in text


BAD_FLAGS = [
    ["train", "--epochs", "0"], ["train", "--epochs", "-3"], ["train", "--epochs", "ten"],
    ["train", "--batch-size", "0"], ["train", "--latent-dim", "-1"], ["train", "--lr", "nan"],
    ["train", "--lr", "inf"], ["train", "--lr", "0"], ["train", "--beta", "-1"], ["train", "--model", "gan"],
    ["train", "--dataset", "cifar10"], ["train", "--binarize", "maybe"], ["train", "--device", "tpu"],
    ["train", "--seed", "-1"], ["train", "--limit-train", "0"], ["train", "--val-size", "-5"],
    ["train", "--no-such-flag"], ["evaluate"], ["evaluate", "--checkpoint", "x", "--iw-samples", "-1"],
    ["frobnicate"], [],
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=[" ".join(a) or "nothing" for a in BAD_FLAGS])
def test_bad_flags_give_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert "--help" in err


def test_bad_flag_in_a_real_process_has_no_traceback():
    p = run_cli("train", "--epochs", "0")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [  # the hint is the interpreter really run, quoted
        f"error: argument --epochs: expected a positive integer, got 0 (see: {shlex.quote(sys.executable)} -m "
        f"vae_course train --help)"]


def test_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["train", "--out", str(blocker / "run"), "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out: cannot write to") and len(err.splitlines()) == 1


def test_missing_or_broken_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "error: checkpoint: no file at" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "bad.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert "truncated or corrupted" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("source", ["missing", "corrupted"])
def test_bad_vae_course_data_is_one_line_in_a_real_process(tmp_path, source):
    data = tmp_path / "data" / "MNIST" / "raw"
    data.mkdir(parents=True)
    if source == "corrupted":
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            (data / name).write_bytes(b"junk")
    env = cli_env(VAE_COURSE_DATA=str(tmp_path / "data"), VAE_COURSE_CACHE=str(tmp_path / "cache"))
    p = run_cli("train", "--epochs", "1", "--out", str(tmp_path / "out"), env=env, timeout=120)
    assert p.returncode == 1, p.stdout
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "VAE_COURSE_DATA" in err and source in err and "train-images-idx3-ubyte.gz" in err


# ---------------------------------------------------------------- issue 16: every failure is one line
import contextlib  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

from course_testing import ROOT  # noqa: E402

SMALL = ["--limit-train", "300", "--limit-test", "100", "--no-progress"]


@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "4m", read_only: bool = False):
    """A real small file system (tmpfs) at ``where``; skip where mount is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _one_error_line(p, code=1):
    err = p.stderr.strip()
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err, err
    return err


@needs_mnist
def test_full_disk_is_one_line(tmp_path):
    with _tmpfs(tmp_path / "small", size="3m") as small:
        p = run_cli("train", "--epochs", "1", "--out", str(small / "run"), *SMALL)
        err = _one_error_line(p)
        assert "no space left on the device" in err and "checkpoint.pt" in err
        names = sorted(f.name for f in (small / "run").iterdir())
        assert names in ([".vae_course.lock"], [".vae_course.lock", "sessions.jsonl"]), names  # no half-written file
        if "sessions.jsonl" in names:  # the diary's start line fitted: whole lines only
            assert all(json.loads(line) for line in (small / "run" / "sessions.jsonl").read_text().splitlines())


@needs_mnist
def test_read_only_out_on_resume_fails_before_training(tmp_path, cli_two_epochs):
    _, trained = cli_two_epochs
    with _tmpfs(tmp_path / "ro", size="20m") as ro:
        shutil.copy(trained / "checkpoint.pt", ro / "checkpoint.pt")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        p = run_cli("train", "--resume", "--epochs", "3", "--out", str(ro), "--no-progress")
        err = _one_error_line(p)
        assert f"--out: cannot write to {ro}" in err and "Read-only file system" in err
        assert "Epoch" not in p.stdout  # refused before anything was trained


def test_unwritable_or_unusable_cache_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = cli_env(VAE_COURSE_CACHE=str(blocker / "cache"))
    env.pop("MPLCONFIGDIR", None)
    err = _one_error_line(run_cli("train", "--epochs", "1", "--out", str(tmp_path / "out"), *SMALL, env=env))
    assert "cannot create the cache folder" in err and "VAE_COURSE_CACHE" in err
    with _tmpfs(tmp_path / "ro", read_only=True) as ro:
        env = cli_env(VAE_COURSE_CACHE=str(ro))
        err = _one_error_line(run_cli("train", "--epochs", "1", "--out", str(tmp_path / "out2"), *SMALL, env=env))
        assert "VAE_COURSE_CACHE" in err


@needs_mnist
def test_a_used_out_folder_is_refused_and_overwrite_replaces_it(cli_two_epochs, tmp_path):
    _, trained = cli_two_epochs
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    err = _one_error_line(run_cli("train", "--epochs", "1", "--out", str(out), *SMALL))
    assert "already holds a run" in err and "--overwrite" in err
    p = run_cli("train", "--epochs", "1", "--out", str(out), "--overwrite", *SMALL)
    assert p.returncode == 0, p.stderr
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 1
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", "--overwrite", "--out", str(out)])
    assert info.value.code == 2


@needs_mnist
def test_a_second_run_on_the_same_out_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "vae_course", "train", "--epochs", "50", "--out", str(out),
                              "--limit-train", "2000", "--limit-test", "300", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
    try:
        assert first.stdout.readline().startswith("Epoch 1/50")
        err = _one_error_line(run_cli("train", "--epochs", "1", "--out", str(out), "--overwrite", *SMALL))
        assert f"in use by another training run (pid {first.pid})" in err
    finally:
        first.kill()
        first.wait()


@needs_mnist
def test_divergence_in_the_first_epoch_claims_no_checkpoint(tmp_path):
    out = tmp_path / "run"
    err = _one_error_line(run_cli("train", "--epochs", "1", "--lr", "1e12", "--lr-schedule", "constant",
                                  "--out", str(out), "--limit-train", "2000", "--limit-test", "100",
                                  "--no-progress"))
    assert "diverged at epoch 1" in err and "No checkpoint was written" in err and "last good" not in err
    assert not (out / "checkpoint.pt").exists()


@needs_mnist
def test_nan_weights_make_evaluate_fail_with_one_line(cli_two_epochs, tmp_path):
    from vae_course.checkpoint import load_checkpoint, save_checkpoint

    _, trained = cli_two_epochs
    state = load_checkpoint(trained / "checkpoint.pt")
    first = next(iter(state["model_state"]))
    state["model_state"][first] = torch.full_like(state["model_state"][first], math.nan)
    save_checkpoint(state, tmp_path / "nan.pt")
    err = _one_error_line(run_cli("evaluate", "--checkpoint", str(tmp_path / "nan.pt"), "--limit-test", "20",
                                  "--device", "cpu"))
    assert "nan" in err.lower() or "finite" in err.lower()


def test_an_unexpected_error_is_one_line_asking_for_a_report(monkeypatch, capsys):
    import vae_course.cli as cli

    def broken(args):
        raise RuntimeError("a bug")  # stands in for a bug anywhere below main

    monkeypatch.setitem(cli.COMMANDS, "evaluate", broken)
    assert main(["evaluate", "--checkpoint", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unexpected RuntimeError: a bug" in err and "please report" in err
    monkeypatch.setenv("VAE_COURSE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["evaluate", "--checkpoint", "x"])


def test_help_documents_the_exit_codes(capsys):
    for command in ([], ["train"], ["evaluate"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert "exit codes:" in text and "130" in text and "143" in text and "VAE_COURSE_DEBUG" in text


@needs_mnist
def test_evaluate_prints_the_elbo_first_and_iwae_only_on_request(cli_two_epochs, capsys):
    _, out = cli_two_epochs
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--limit-test", "20", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("Test ELBO:") and not any("IWAE NLL" in ln for ln in lines)
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--limit-test", "20", "--device", "cpu",
                 "--iw-samples", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("Test ELBO:") and lines[2].startswith("IWAE NLL (K=5):")


# ---------------------------------------------------------------- issue 21: --help says the real defaults
def _train_help_of() -> dict:
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return {a.dest: a.help or "" for a in train._actions}


def _stated_default(help_text: str, model: str) -> str:
    """The default a flag's help states for ``--model model``: "(default: X for --model m, ...; otherwise Y)"."""
    rule = re.search(r"\(default: (.*)\)\s*$", help_text).group(1)
    for value, named in re.findall(r"(\S+) for --model ([\w-]+)", rule):
        if named == model:
            return value
    return rule.rsplit("otherwise ", 1)[-1]


@pytest.mark.parametrize("model", ["vae", "ae", "conv-vae", "cvae"])
def test_train_help_states_each_default_as_config_py_sets_it(model):
    """Read the way a user reads it, `train --help` gives, for every model, the value that
    default_config (the one set of defaults) really uses: no flag's text contradicts another's."""
    from dataclasses import fields

    from vae_course.config import TrainConfig, default_config

    helps, config, checked = _train_help_of(), default_config(model=model), 0
    for f in fields(TrainConfig):
        if f.name == "model":  # the parameter itself
            continue
        text = helps.get(f.name, "")
        value = getattr(config, f.name)
        if "(default:" not in text or value is None:  # None: "the model's own", "all", "--epochs"
            continue
        expected = f"{value:g}" if isinstance(value, float) else str(value)
        assert _stated_default(text, model) == expected, (f.name, text)
        checked += 1
    assert checked >= 13  # every setting with a plain value is covered
    # the tuned recipe's paragraph lists each of its settings with the value it uses
    p = subprocess.run([sys.executable, "-m", "vae_course", "train", "--help"], capture_output=True, text=True,
                       timeout=240, env=cli_env(), cwd=ROOT)
    assert p.returncode == 0 and "--lr-schedule cosine" in p.stdout and "(default: constant)" not in p.stdout


def test_bench_mentions_the_json_only_when_one_is_written():
    from vae_course import bench
    from vae_course.results import load_result

    record = dict(load_result("bench_cpu"), busy=True)  # a committed record, as if the machine was busy
    warning = [line for line in bench.format_table(record).splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "JSON" not in warning[0] and "load_before" not in warning[0], warning
    written = bench.format_table(record, Path("runs/bench.json"))
    assert "see load_before in runs/bench.json" in written
