"""Write vae_course/results/conv_vae_long.json: a long CLI run's evaluation plus where it came from.

Usage (after ``train`` and ``evaluate --json > eval.json``)::

    python scripts/record_long_run.py --run runs/conv-long --eval eval.json \
        --train-command "python -m vae_course train ..." --out vae_course/results/conv_vae_long.json

The file keeps the evaluation as ``evaluate --json`` printed it and adds, from
the run folder (the checkpoint read with :func:`vae_course.checkpoint.load_checkpoint`,
which verifies it, and the diary ``sessions.jsonl`` of :mod:`vae_course.run_log`):

* the training command, the commits it trained at, the CPU;
* every session of the run (start, each interruption and resume, with its
  commit, device and thread count);
* each epoch's validation ELBO (and test ELBO, only for a run that watched the
  test set: then ``test_read_during_training`` is true);
* which weights were evaluated: ``checkpoint.pt`` (the last epoch) or ``best.pt``
  (the epoch with the lowest validation loss) and that epoch;
* the cost: wall-clock and CPU seconds of training (every epoch of the run) and
  of the IWAE estimate, summed into CPU-minutes.

So the results page and notebook 6 can show every number with its provenance
(:mod:`vae_course.provenance`). Nothing here is typed by hand but the commands,
the decision record and the optional ``--note``.

A record written inside the repository (``--out`` under it: a file to commit) must
be true of the commit it names, so this script refuses to write it when

* the working tree has uncommitted changes to tracked files (``--allow-dirty``
  writes it anyway, with ``"dirty": true``);
* the run folder is outside the repository (its paths could not be relative);
* any session of the run trained from a tree with uncommitted changes (its diary
  says so; ``--allow-dirty`` records it anyway);
* the commands disagree with the run: every ``train`` command's ``--out`` (default
  ``runs/latest``) must be the ``--run`` folder, and the evaluation's
  ``--checkpoint`` its ``checkpoint.pt`` or ``best.pt``.

Paths are stored relative to the repository root, and the commands are recorded
as run from there (an absolute path into the checkout is rewritten as relative).
A record written elsewhere (a scratch file) gets the same fields; what would have
been refused is printed as a warning instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from vae_course.checkpoint import epoch_of, history_of, load_checkpoint, train_config_of
from vae_course.provenance import cpu_model, git_commit
from vae_course.run_folder import BEST_NAME
from vae_course.run_log import read_events

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = "runs/latest"  # train's --out when none is given (vae_course.cli)


class RecordError(ValueError):
    """The record would not be true of what ran (or of the commit it names)."""


def repo_path(path: str | os.PathLike) -> Path:
    """PATH as an absolute path, a relative one taken from the repository root (where commands run)."""
    path = Path(path).expanduser()
    return (path if path.is_absolute() else ROOT / path).resolve()


def relative(path: str | os.PathLike) -> str:
    """PATH relative to the repository root (POSIX), or unchanged when it lies outside the checkout."""
    try:
        return repo_path(path).relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def relative_command(command: str) -> str:
    """COMMAND with every absolute path into the checkout written relative to its root."""
    return command.replace(f"{ROOT.as_posix()}/", "")


def _flag_values(command: str, program: str, flag: str, default: str | None) -> list[str | None]:
    """The value of FLAG in each ``vae_course PROGRAM`` command of COMMAND (``;`` or ``&&`` between)."""
    values = []
    for part in command.replace("&&", ";").split(";"):
        words = shlex.split(part)
        if "vae_course" not in words and not any(w.endswith("vae-course") for w in words):
            continue
        if program not in words:
            continue
        value = default
        for i, word in enumerate(words):
            if word == flag and i + 1 < len(words):
                value = words[i + 1]
            elif word.startswith(flag + "="):
                value = word.split("=", 1)[1]
        values.append(value)
    return values


def disagreements(run: Path, train_command: str, eval_command: str) -> list[str]:
    """What in the commands does not name the run that is being recorded (empty when they agree)."""
    problems = []
    outs = _flag_values(train_command, "train", "--out", DEFAULT_OUT)
    if not outs:
        problems.append(f"--train-command names no 'python -m vae_course train' command: {train_command!r}")
    for out in outs:
        if repo_path(out) != repo_path(run):
            problems.append(f"the train command's --out is {out}, but the run recorded is {relative(run)}")
    for checkpoint in _flag_values(eval_command, "evaluate", "--checkpoint", None):
        if checkpoint is None or repo_path(checkpoint) not in (repo_path(run) / "checkpoint.pt",
                                                              repo_path(run) / BEST_NAME):
            problems.append(f"the evaluation read --checkpoint {checkpoint}, not {relative(run)}/checkpoint.pt "
                            f"or {relative(run)}/{BEST_NAME}")
    return problems


def refusals(run: Path, train_command: str, eval_command: str, dirty: bool | None, allow_dirty: bool) -> list[str]:
    """Every reason not to commit this record, one line each."""
    problems = disagreements(run, train_command, eval_command)
    if not repo_path(run).is_relative_to(ROOT):
        problems.append(f"the run folder {run} is outside the repository, so the record's paths cannot be "
                        "relative to it: train into the checkout (e.g. --out runs/conv-long)")
    dirty_sessions = [e for e in read_events(repo_path(run)) if e.get("dirty")]
    if dirty_sessions and not allow_dirty:
        problems.append(f"{len(dirty_sessions)} session(s) of the run trained from a tree with uncommitted changes "
                        f"(first at epoch {dirty_sessions[0]['epoch']}, {dirty_sessions[0]['utc']}): train from a "
                        "commit, or pass --allow-dirty to record it")
    if dirty and not allow_dirty:
        problems.append("the working tree has uncommitted changes to tracked files: commit them first (a "
                        "committed result names a clean commit) or pass --allow-dirty to record \"dirty\": true")
    if dirty is None:
        problems.append("no git checkout found: the record could not name its commit")
    return problems


def _rates(history: list[dict], config: dict) -> str:
    """'lr 0.001 (epochs 1-137), 0.0001 (epochs 138-158)' for a run whose rate changed on --resume."""
    if config["lr_schedule"] != "constant":
        return f"lr {config['lr']:g} {config['lr_schedule']}"
    spans: list[list] = []  # [rate, first epoch, last epoch]
    for h in history:
        if spans and spans[-1][0] == h["lr"]:
            spans[-1][2] = h["epoch"]
        else:
            spans.append([h["lr"], h["epoch"], h["epoch"]])
    if len(spans) == 1:
        return f"lr {spans[0][0]:g} constant"
    return "lr " + ", ".join(f"{r:g} (epochs {a}-{b})" for r, a, b in spans)


def sessions(run: Path) -> list[dict]:
    """The run's diary, its commands written relative to the repository root."""
    events = read_events(run)
    for event in events:
        if "command" in event:
            event["command"] = relative_command(event["command"])
    return events


def cost(history: list[dict], evaluation: dict) -> dict:
    """Seconds of training (every epoch of the run) and of the IWAE estimate, wall-clock and CPU."""
    train_cpu = sum(h.get("cpu_seconds", 0.0) for h in history)
    iwae_cpu = evaluation.get("iwae_cpu_seconds", 0.0)
    return {"train_seconds": round(sum(h["seconds"] for h in history), 1), "train_cpu_seconds": round(train_cpu, 1),
            "iwae_seconds": evaluation.get("iwae_seconds"), "iwae_cpu_seconds": evaluation.get("iwae_cpu_seconds"),
            "cpu_minutes": round((train_cpu + iwae_cpu) / 60, 1),
            "cpu_seconds_known_for_epochs": sum("cpu_seconds" in h for h in history)}


def record(run: Path, evaluation: dict, train_command: str, note: str | None) -> dict:
    """The evaluation plus the run's provenance, as written to ``--out`` (paths relative to the repository)."""
    state = load_checkpoint(run / "checkpoint.pt")  # the last epoch: the whole run's history
    history = history_of(state)
    config = train_config_of(state)
    commit, dirty = git_commit()
    train_command, eval_command = relative_command(train_command), relative_command(evaluation["command"])
    evaluated = repo_path(evaluation["checkpoint"])
    diary = sessions(run)
    result = dict(evaluation)
    result.update({
        "checkpoint": relative(evaluated),
        "evaluated_weights": ("the epoch with the lowest validation loss (best.pt)" if evaluated.name == BEST_NAME
                              else "the last epoch (checkpoint.pt)"),
        "epochs_trained": epoch_of(state),
        "val_size": config.get("val_size", 0),
        "test_read_during_training": any(k.startswith("test_") for h in history for k in h),
        "sessions": diary,
        "train_commits": sorted({e["commit"] for e in diary if e.get("commit")}),
        "cost": cost(history, evaluation),
        "val_elbo_per_epoch": [round(h["val_elbo"], 3) for h in history if "val_elbo" in h],
        "architecture": "ConvVAE (2 conv + 256 hidden)" if evaluation["model"] == "conv-vae" else evaluation["model"],
        "objective": f"ELBO (beta = {config['beta']:g}), Adam, {_rates(history, config)}, "
                     f"batch {config['batch_size']}",
        "eval_command": eval_command,
        "train_command": train_command,
        "command": f"{train_command}; {eval_command}",
        "commit": commit,
        "dirty": dirty,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "seconds_per_epoch": [round(h["seconds"], 1) for h in history],
        "cpu_seconds_per_epoch": [round(h["cpu_seconds"], 1) for h in history if "cpu_seconds" in h],
    })
    if result["test_read_during_training"]:
        result["test_elbo_per_epoch_full_test_set"] = [round(h["test_elbo"], 3) for h in history if "test_elbo" in h]
    if note:
        result["note"] = note
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the run's --out folder (with checkpoint.pt)")
    parser.add_argument("--eval", type=Path, required=True, help="what `evaluate --json` printed")
    parser.add_argument("--train-command", required=True, help="the train command(s), as run")
    parser.add_argument("--note", default=None, help="anything a reader must know (e.g. the machine was shared)")
    parser.add_argument("--decisions", required=True,
                        help="how every setting and the stopping point were decided, in a sentence")
    parser.add_argument("--decided-on-test", choices=("yes", "no"), required=True,
                        help="did any decision look at the test set? (the results page says so)")
    parser.add_argument("--out", type=Path, default=ROOT / "vae_course" / "results" / "conv_vae_long.json")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="record from a working tree with uncommitted changes (the record says \"dirty\": true)")
    args = parser.parse_args()
    evaluation = json.loads(args.eval.read_text())
    problems = refusals(args.run, args.train_command, evaluation.get("command", ""), git_commit()[1],
                        args.allow_dirty)
    committed = repo_path(args.out).is_relative_to(ROOT)
    for line in problems:
        print(f"record_long_run.py: {'refused' if committed else 'warning'}: {line}", file=sys.stderr)
    if problems and committed:
        sys.exit(1)
    result = record(args.run, evaluation, args.train_command, args.note)
    result["decisions"] = args.decisions
    result["decided_on_test"] = args.decided_on_test == "yes"
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"Wrote {args.out}: {result['epochs']} epochs, IWAE NLL {result['iwae_nll']:.2f} "
          f"± {result['iwae_nll_stderr']:.2f} on {result['n_test']} test images ({result['test_images']})")


if __name__ == "__main__":
    main()
