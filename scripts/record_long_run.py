"""Write vae_course/results/conv_vae_long.json: a long CLI run's evaluation plus where it came from.

Usage (after ``train`` and ``evaluate --json > eval.json``)::

    python scripts/record_long_run.py --run runs/conv-long --eval eval.json \
        --train-command "python -m vae_course train ..." --out vae_course/results/conv_vae_long.json

The file keeps the evaluation as ``evaluate --json`` printed it and adds the
training command, the git commit, the CPU, the per-epoch seconds and test ELBO
from the run's checkpoint (read with :func:`vae_course.checkpoint.load_checkpoint`,
which verifies it), so the results page and notebook 6 can show every number
with its provenance (:mod:`vae_course.provenance`). Nothing here is typed by
hand but the commands and the optional ``--note``.

Checkpoint fields read (until the checkpoint module offers accessors):
``history`` (per epoch: ``epoch``, ``lr``, ``seconds``, ``test_elbo``) and
``train_config`` (``lr``, ``lr_schedule``, ``beta``, ``batch_size``).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from vae_course.checkpoint import history_of, load_checkpoint, train_config_of
from vae_course.provenance import cpu_model, git_commit

ROOT = Path(__file__).resolve().parents[1]


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


def record(run: Path, evaluation: dict, train_command: str, note: str | None) -> dict:
    """The evaluation plus the run's provenance, as written to ``--out``."""
    state = load_checkpoint(run / "checkpoint.pt")
    history = history_of(state)
    config = train_config_of(state)
    commit, dirty = git_commit()
    result = dict(evaluation)
    result.update({
        "architecture": "ConvVAE (2 conv + 256 hidden)" if evaluation["model"] == "conv-vae" else evaluation["model"],
        "objective": f"ELBO (beta = {config['beta']:g}), Adam, {_rates(history, config)}, "
                     f"batch {config['batch_size']}",
        "eval_command": evaluation["command"],
        "train_command": train_command,
        "command": f"{train_command}; {evaluation['command']}",
        "commit": commit,
        "dirty": dirty,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "seconds_per_epoch": [round(h["seconds"], 1) for h in history],
        "test_elbo_per_epoch_full_test_set": [round(h["test_elbo"], 3) for h in history],
    })
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
    args = parser.parse_args()
    result = record(args.run, json.loads(args.eval.read_text()), args.train_command, args.note)
    result["decisions"] = args.decisions
    result["decided_on_test"] = args.decided_on_test == "yes"
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"Wrote {args.out}: {result['epochs']} epochs, IWAE NLL {result['iwae_nll']:.2f} "
          f"± {result['iwae_nll_stderr']:.2f} on {result['n_test']} test images ({result['test_images']})")


if __name__ == "__main__":
    main()
