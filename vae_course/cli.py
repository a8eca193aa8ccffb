"""The command-line interface: ``python -m vae_course {train,evaluate,bench}``.

Every error a user can cause (a bad flag, a missing file, a broken checkpoint)
ends in one readable line and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import datetime
import errno
import json
import logging
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from .arguments import non_negative_float as _non_negative_float
from .arguments import non_negative_int as _non_negative_int
from .arguments import positive_float as _positive_float
from .arguments import positive_int as _positive_int
from .arguments import apply_bounds
from .checkpoint import (CheckpointError, epoch_of, history_of, load_checkpoint, model_from_checkpoint, model_name_of,
                         torch_version_of, train_config_of)
from .data import BINARIZE_MODES, DATASETS, DataNotFoundError, load_data
from .device import DEVICE_CHOICES, device_name, get_device
from .distributed import DistContext, broadcast_flag, launched_by_torchrun
from .threads import choose_cpu_threads
from .evaluate import check_iwae_duration, evaluate_elbo, iwae_nll
from .models import MODELS
from .plots import reconstruction_pairs, save_grid
from .bench import add_bench_parser, run_bench_command
from .run_folder import RunFolderError, open_run_folder
from .settings import CacheDirError
from .commands import LAUNCH_ENV, cli_prefix, resume_command, shell_join
from .config import RECOMMENDED_SETTINGS, RESUME_FIXED, TrainConfig, default_config, flag_name, on_resume
from .signals import STOP_SIGNALS, TrainingInterrupted
from .train import Trainer, TrainingDiverged

GRAYSCALE_LABEL = "BCE bound on grayscale pixels, not a likelihood"
PROG = "python -m vae_course"  # how the usage lines write the program

TRAIN_EPILOG = """\
examples:
  python -m vae_course train                        # the seed's VAE, 10 epochs on MNIST
  python -m vae_course train --epochs 20 --out runs/vae20
  python -m vae_course train --model conv-vae --binarize dynamic --epochs 50 --out runs/conv
  python -m vae_course train --out runs/conv --resume --epochs 100   # continue a run
  python -m vae_course train --out runs/conv --resume --epochs 120 --lr 1e-4   # ... at a 10x smaller rate

After every epoch the trainer prints the seed guide's lines, per example, in nats:
  Loss = Reconstruction Loss + beta * KL Divergence   (training set)
  Test Loss                                          (the same objective on the test set)
and writes checkpoint.pt and metrics.json into --out. At the end it writes
samples.png (new images from the prior) and reconstructions.png.
Press Ctrl-C once (or send SIGTERM / SIGHUP) to stop cleanly: the step finishes, the checkpoint
is saved and the resume command printed. A folder that already holds a run is refused unless you
add --resume (continue it) or --overwrite (replace it); two runs cannot share one --out.

Several processes or GPUs: `launch` starts the same command on N processes with PyTorch's launcher
(torchrun), one process per GPU:
  python -m vae_course launch --nproc-per-node 4 train --device cuda --out runs/ddp ...   # 4 GPUs, NCCL
  python -m vae_course launch --nproc-per-node 2 train --device cpu --out runs/ddp ...    # 2 CPU processes, gloo
--batch-size is then the global batch: each process trains on its slice of every batch and
DistributedDataParallel averages the gradients, so N processes compute what one process computes
with the same --batch-size (up to float rounding). Rank 0 alone prints, writes the checkpoint,
metrics and images; --resume and Ctrl-C/SIGTERM work as with one process (a signal to any rank
stops all after the same step). Expect near-linear speed-up while each GPU's share of the batch
keeps it busy, less once the per-GPU batch gets small; MNIST is too small to need it. Not with
--free-bits (its floor would apply per slice) or --compile.
What you see: rank 0's log and, after a stop or an error, rank 0's one line (what was saved and the
resume command, or what was wrong); then `launch` adds one line with the outcome and exits with the
ranks' exit code (below: 130/143/129 after a signal, never hidden). Plain torchrun works too
(torchrun --nproc-per-node 2 -m vae_course train ...) and the ranks behave the same, but torchrun
reports every non-zero exit of a rank, a clean stop on a signal included, as a ChildFailedError
traceback and exits with 1; its table lists each rank's real exit code ("exitcode: 143").
"""

EXIT_CODES = """\
exit codes:
  0      success
  1      a runtime, data, checkpoint or file-system error (one line on stderr says what to do)
  2      a usage error: an unknown flag or a bad value
  128+n  stopped by signal n: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP; once training has started, the
         checkpoint is saved first (the one line on stderr says what was saved and how to resume)
  141    the output pipe was closed (e.g. ... | head)
Set VAE_COURSE_DEBUG=1 to see the full traceback of an unexpected error.
"""


def _value_text(value: Any) -> str:
    """A setting's value as the command line writes it (0.001, 128, cosine)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default_help(name: str, unset: str = "none") -> str:
    """``(default: ...)`` for the TrainConfig field ``name``, made from config.py, never typed:
    the field's default and, where a model's tuned recipe (RECOMMENDED_SETTINGS) replaces it,
    that model's value first (--model's own default, vae, has one)."""
    base = getattr(TrainConfig(), name)
    plain = unset if base is None else _value_text(base)
    special = [(model, recipe[name]) for model, recipe in sorted(RECOMMENDED_SETTINGS.items())
               if name in recipe and recipe[name] != base]
    if not special:
        return f"(default: {plain})"
    tuned = "; ".join(f"{_value_text(value)} for --model {model}" for model, value in special)
    return f"(default: {tuned}, its tuned recipe, see below; otherwise {plain})"


def _recipes_help() -> str:
    """The epilog's paragraph on the tuned recipes, from config.py's RECOMMENDED_SETTINGS."""
    lines = ["Defaults: each flag's help gives its default (vae_course/config.py). A model's tuned recipe applies"
             " as a whole: give any of its flags and all of them take the plain defaults instead."]
    for model, recipe in sorted(RECOMMENDED_SETTINGS.items()):
        tuned = " ".join(f"{flag_name(k)} {_value_text(v)}" for k, v in recipe.items())
        plain = " ".join(f"{flag_name(k)} {_value_text(getattr(TrainConfig(), k))}" for k in recipe)
        lines.append(f"  --model {model}: {tuned} (tuned recipe); with any of these flags given: {plain}")
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line (no usage dump) on a bad flag."""

    def error(self, message: str) -> None:  # noqa: D401
        sub = self.prog.split()[len(PROG.split()):]  # the subcommand, if this is one's parser
        self.exit(2, f"error: {message} (see: {shell_join([*cli_prefix(), *sub, '--help'])})\n")


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model and print the seed's per-epoch log",
        description="Train an autoencoder or VAE on MNIST / Fashion-MNIST.",
        epilog=TRAIN_EPILOG + "\n" + _recipes_help() + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Defaults are None so that --resume can tell which flags the user really gave; the
    # "(default: ...)" texts come from config.py (_default_help), so they cannot drift from it.
    dflt = _default_help
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help=f"ae: plain autoencoder; vae: the seed's MLP VAE; conv-vae: convolutional "
                        f"VAE; cvae: conditional VAE {dflt('model')}")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None, help=dflt("dataset"))
    p.add_argument("--binarize", choices=BINARIZE_MODES, default=None,
                   help="none: grayscale pixels in [0,1] as in the PyTorch example; dynamic: a fresh "
                        "Bernoulli sample each epoch, as in the papers (needed for likelihoods comparable "
                        f"to them); static: one fixed sample {dflt('binarize')}")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"total number of epochs, also when resuming {dflt('epochs')}")
    p.add_argument("--batch-size", type=_positive_int, default=None, help=dflt("batch_size"))
    p.add_argument("--latent-dim", type=_positive_int, default=None,
                   help=f"size of z; 2 lets you plot the latent space {dflt('latent_dim')}")
    p.add_argument("--hidden-dim", type=_positive_int, default=None,
                   help="hidden units " + dflt("hidden_dim", unset="the model's own"))
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"Adam learning rate; with --lr-schedule cosine, the starting (peak) rate {dflt('lr')}")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="constant: the same rate throughout (the canonical PyTorch example); cosine: decay "
                        f"from --lr to 0 along half a cosine over the run's epochs {dflt('lr_schedule')}")
    p.add_argument("--schedule-epochs", type=_positive_int, default=None,
                   help="length of the cosine schedule in epochs. When you will train in "
                        "several --resume steps, set it to the planned total at the start: the rate then "
                        "follows one schedule and the result equals training in one go "
                        f"{dflt('schedule_epochs', unset='--epochs')}")
    p.add_argument("--beta", type=_non_negative_float, default=None,
                   help="weight of the KL term; 1 is the ELBO, other values give a beta-VAE "
                        f"(not a likelihood bound) {dflt('beta')}")
    p.add_argument("--kl-warmup-epochs", type=_non_negative_float, default=None,
                   help=f"ramp beta linearly from 0 over this many epochs (KL annealing) {dflt('kl_warmup_epochs')}")
    p.add_argument("--free-bits", type=_non_negative_float, default=None,
                   help=f"free bits: floor, in nats, on each latent dimension's batch-average KL {dflt('free_bits')}")
    p.add_argument("--seed", type=_non_negative_int, default=None, help=f"random seed {dflt('seed')}")
    p.add_argument("--device", choices=DEVICE_CHOICES, default=None,
                   help=f"auto picks CUDA, then Apple MPS, then the CPU {dflt('device')}")
    p.add_argument("--limit-train", type=_positive_int, default=None,
                   help=f"use only the first N training images (quick experiments) {dflt('limit_train', 'all')}")
    p.add_argument("--limit-test", type=_positive_int, default=None,
                   help=f"use only the first N test images {dflt('limit_test', 'all')}")
    p.add_argument("--val-size", type=_non_negative_int, default=None,
                   help=f"hold out the last N training images as a validation set {dflt('val_size')}")
    p.add_argument("--keep-test-unseen", action="store_true", default=None,
                   help="evaluate only the --val-size split after each epoch, so that no decision can look at the "
                        "test set; read it once at the end with `evaluate`")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision on a CUDA GPU (bf16 where supported, else fp16)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the training step")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads on the CPU (default: torch's one per physical core, lowered at the start to the "
                        "logical CPUs no other process keeps busy, since threads that share a CPU with another "
                        "process make training several times slower; OMP_NUM_THREADS also overrides it)")
    p.add_argument("--out", default="runs/latest", help="folder for checkpoint.pt, metrics.json and images "
                                                       "(default: runs/latest)")
    changeable = [flag_name(f.name) for f in fields(TrainConfig)
                  if on_resume(f) != RESUME_FIXED and any(flag_name(f.name) in a.option_strings for a in p._actions)]
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue from --out/checkpoint.pt; settings come from the checkpoint, and a flag that "
                            f"contradicts it is an error (only {', '.join(changeable)} may change; --lr only for a "
                            "run with the constant schedule: dividing the rate by 10 when the test loss stalls is a "
                            "step decay)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run already in --out (its checkpoint, metrics and images are deleted)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="report a checkpoint's test ELBO (and, on request, the importance-weighted NLL)",
        description="Evaluate a trained VAE on its dataset's test set: the ELBO (one sample per image) and, with "
                    "--iw-samples K, the importance-weighted estimate of -log p(x) with K samples (Burda et al. "
                    "2015). Both in nats per example, with standard errors across test images. The ELBO is "
                    "printed first; before a long IWAE run, a short timed probe estimates its duration.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="path to a checkpoint.pt written by train")
    p.add_argument("--iw-samples", type=_non_negative_int, default=0, metavar="K",
                   help="importance samples per image for the IWAE estimate (default 0: the ELBO only, in "
                        "seconds). Papers use K=5000 on all 10,000 test images (hours on a CPU): try "
                        "--iw-samples 1000 --sample-test 1000 first")
    p.add_argument("--allow-long", action="store_true",
                   help="run the IWAE estimate even when its timed probe expects it to take over 10 minutes")
    subset = p.add_mutually_exclusive_group()
    subset.add_argument("--limit-test", type=_positive_int, default=None,
                        help="evaluate on the first N test images (a quick look: the first images of MNIST's "
                             "test set are not a fair sample, see --sample-test)")
    subset.add_argument("--sample-test", type=_positive_int, default=None, metavar="N",
                        help="evaluate on N test images drawn at random (fixed seed), for a fair estimate when "
                             "the whole test set would take too long (the first 200 MNIST test images, for "
                             "example, cost the course's conv VAE 3.4 nats less than the average test image)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="auto picks CUDA, then Apple MPS, then the CPU (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train and evaluate the course's autoencoders and VAEs from a terminal.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,bench,launch}", parser_class=_Parser)
    sub.required = True
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    add_bench_parser(sub)
    _add_launch_parser(sub)
    return apply_bounds(parser)  # the ranges of vae_course.bounds, shared with the trainer and the loader


def _given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig settings given on the command line (flags left out are None)."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}


def _write_images(trainer: Trainer, out: Path) -> Path:
    model, data = trainer.model, trainer.data
    model.eval()
    with torch.no_grad():
        if getattr(model, "is_variational", False):
            gen = torch.Generator().manual_seed(0)
            y = torch.arange(64, device=trainer.device) % 10 if model.conditional else None
            samples = model.sample(64, y=y, generator=gen)
            samples_path = save_grid(samples, out / "samples.png")
        else:
            samples_path = None
        x, y = data.test_x[:32], data.test_y[:32]
        logits = model(x, y)[0]
        save_grid(reconstruction_pairs(x, torch.sigmoid(logits)), out / "reconstructions.png")
    return samples_path or out / "reconstructions.png"


def _after_training(trainer: Trainer, out: Path, local_world_size: int | None = None) -> "Callable[[str], str]":
    """What a stop signal while the images are written means: training is complete and saved."""
    again = resume_command(out, trainer.config.epochs, local_world_size)
    return lambda name: (f"Interrupted by {name} while writing the images, after training: "
                         f"{out / 'checkpoint.pt'} holds all {trainer.epoch} epochs. To write the images, run: "
                         f"{again}")


def _train(args: argparse.Namespace) -> int:
    if launched_by_torchrun():
        return _train_distributed(args)
    out = Path(args.out)
    progress = not args.no_progress
    # The folder is checked (writable, not holding another run unless --resume/--overwrite) and
    # locked before anything is trained, and stays locked until the images are written.
    with open_run_folder(out, resume=args.resume, overwrite=args.overwrite):
        if args.resume:
            trainer = Trainer.resume(out, progress=progress, **_given_settings(args))
        else:
            trainer = Trainer(config=default_config(**_given_settings(args)), out_dir=out, progress=progress)
        if trainer.device.type == "cpu":
            note = choose_cpu_threads(args.threads)  # before fit(): the diary records the count used
            if note:
                print(note, flush=True)
        if trainer.epoch >= trainer.config.epochs:
            print(f"Nothing to do: the checkpoint already has {trainer.epoch} of {trainer.config.epochs} epochs.")
        trainer.fit()  # inside, a stop signal saves and raises TrainingInterrupted with the resume command
        _STOP.note = _after_training(trainer, out)
        path = _write_images(trainer, out)
    print(f"Generated new images successfully: {path}")
    return 0


def _train_distributed(args: argparse.Namespace) -> int:
    """``_train`` on one rank of a torchrun job: rank 0 owns the folder, prints and writes the images."""
    out = Path(args.out)
    with DistContext.from_env(args.device or "auto") as ctx:
        folder, problem = None, None
        if ctx.is_main:  # the lock and the folder checks: rank 0 alone, before any rank reads a checkpoint
            try:
                folder = open_run_folder(out, resume=args.resume, overwrite=args.overwrite)
            except (RunFolderError, OSError) as err:
                problem = err
        if broadcast_flag(problem is not None, ctx):
            if problem is None:  # rank 0 says why, once
                raise _RankFollows(1)
            raise problem
        try:
            settings = {**_given_settings(args), "device": ctx.device.type}  # the device the ranks really use
            progress = not args.no_progress
            if args.resume:
                trainer = Trainer.resume(out, progress=progress, dist=ctx, **settings)
            else:
                trainer = Trainer(config=default_config(**settings), out_dir=out, progress=progress, dist=ctx)
            if trainer.epoch >= trainer.config.epochs and ctx.is_main:
                print(f"Nothing to do: the checkpoint already has {trainer.epoch} of {trainer.config.epochs} epochs.")
            trainer.fit()
            _STOP.note = _after_training(trainer, out, ctx.local_world_size)
            path = _write_images(trainer, out) if ctx.is_main else None
            ctx.barrier()  # the run is complete on disk before any rank reports success
        except TrainingInterrupted as err:
            # Every rank is leaving with 128 + n; torchrun sends SIGTERM to the ranks still alive
            # once the first has exited, which must not turn their exit into a kill.
            _ignore_stop_signals()
            if ctx.is_main:
                raise
            raise _RankFollows(128 + err.signum) from None  # rank 0 printed what was saved
        finally:
            if folder is not None:
                folder.release()
    if path is not None:
        print(f"Generated new images successfully: {path}")
    return 0


def _ignore_stop_signals() -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


SUBSET_SEED = 0  # the same random test images for every --sample-test N run


def _random_subset(x: Tensor, y: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """``n`` test images drawn without replacement, kept in test-set order."""
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(SUBSET_SEED))[:n].sort().values
    return x[idx], y[idx]


def _evaluate(args: argparse.Namespace) -> int:
    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
    if args.iw_samples and not getattr(model, "is_variational", False):
        raise ValueError(f"--iw-samples: a plain autoencoder ({model_name_of(state)!r}) defines no p(x) to estimate; "
                         f"leave --iw-samples out to get its reconstruction loss")
    device = get_device(args.device)
    model.to(device).eval()
    cfg = train_config_of(state)
    data = load_data(cfg["dataset"], cfg["binarize"], limit_test=args.limit_test, seed=cfg["seed"])
    x, y, selection = data.test_x, data.test_y, "all" if args.limit_test is None else f"first {args.limit_test}"
    if args.sample_test is not None:
        if args.sample_test > len(x):
            raise ValueError(f"--sample-test {args.sample_test} is more than the {len(x)} test images; "
                             f"leave it out to use them all")
        x, y = _random_subset(x, y, args.sample_test)
        selection = f"{args.sample_test} drawn at random (seed {SUBSET_SEED})"
    x, y = x.to(device), y.to(device)
    y = y if getattr(model, "conditional", False) else None
    result = {
        "checkpoint": str(args.checkpoint), "model": model_name_of(state), "model_config": dict(model.config),
        "dataset": cfg["dataset"], "binarize": cfg["binarize"], "epochs": epoch_of(state),
        "device": device_name(device), "n_test": len(x), "test_images": selection,
        "label": GRAYSCALE_LABEL if cfg["binarize"] == "none" else "negative log-likelihood (nats)",
        # provenance, so a results/*.json file says how it was made
        "train_seconds": round(sum(h.get("seconds", 0.0) for h in history_of(state)), 1),
        "trained_with_torch": torch_version_of(state), "torch": str(torch.__version__),
        "date": datetime.date.today().isoformat(), "command": shell_join(["python", "-m", "vae_course",
                                                                          *sys.argv[1:]]),
    }
    elbo = evaluate_elbo(model, x, y)
    if not math.isfinite(elbo["elbo"]):
        raise ValueError(f"the test ELBO of {args.checkpoint} is {elbo['elbo']}: the model gives non-finite "
                         f"losses (damaged or diverged weights); evaluate an earlier checkpoint")
    result.update({f"test_{k}": v for k, v in elbo.items()})
    if not args.json:
        print(f"{state['model_name']} on {cfg['dataset']} (binarize={cfg['binarize']}), {state['epoch']} epochs, "
              f"{len(x)} test images ({selection}), {result['device']}")
        print(f"Test ELBO: {elbo['elbo']:.2f} ± {elbo['elbo_stderr']:.2f} nats", flush=True)
    if getattr(model, "is_variational", False) and args.iw_samples > 0:
        print(check_iwae_duration(model, x, y, args.iw_samples, result["device"], allow_long=args.allow_long),
              file=sys.stderr, flush=True)  # refuses (one line) a run over 10 minutes without --allow-long
        start, cpu_start = time.perf_counter(), time.process_time()
        iw = iwae_nll(model, x, y, k=args.iw_samples, progress=not args.json)
        # what the estimate cost, for a result's device-minutes (CPU time: all of this process's threads)
        result.update({"iwae_seconds": round(time.perf_counter() - start, 1),
                       "iwae_cpu_seconds": round(time.process_time() - cpu_start, 1)})
        if not math.isfinite(iw["nll"]):
            raise ValueError(f"the IWAE estimate of {args.checkpoint} is {iw['nll']}: the model gives "
                             f"non-finite log-weights")
        result.update({"iwae_nll": iw["nll"], "iwae_nll_stderr": iw["nll_stderr"], "iw_samples": iw["k"]})
    if args.json:
        print(json.dumps(result))
        return 0
    if "iwae_nll" in result:
        print(f"IWAE NLL (K={args.iw_samples}): {result['iwae_nll']:.2f} ± {result['iwae_nll_stderr']:.2f} nats")
    elif getattr(model, "is_variational", False):
        print("(add --iw-samples 1000 for the importance-weighted NLL, a tighter estimate of -log p(x))")
    if cfg["binarize"] == "none":
        print(f"Note: {GRAYSCALE_LABEL}; compare with papers only on binarized data.")
    return 0


# ---------------------------------------------------------------- launch: torchrun, one line at the end
LAUNCH_EPILOG = """\
examples:
  python -m vae_course launch --nproc-per-node 2 train --device cpu --out runs/ddp --epochs 5
  python -m vae_course launch --nproc-per-node 4 train --device cuda --out runs/ddp --resume --epochs 20
  python -m vae_course launch --nnodes 2 --node-rank 0 --rdzv-endpoint HOST:29500 --nproc-per-node 8 train ...

It runs PyTorch's launcher (torch.distributed.run, what the torchrun command runs) in this process,
with the same options, and `python -m vae_course train ...` on every process. The ranks print as
usual (rank 0 the log and its one line on a stop or an error); the launcher's own log and its
ChildFailedError traceback are replaced by one line: the outcome and the exit code, which is the
ranks' own (1 an error, 2 a usage error, 130/143/129 a clean stop on SIGINT/SIGTERM/SIGHUP after
saving, 128+n a rank killed by signal n).
"""


def _add_launch_parser(sub) -> None:
    p = sub.add_parser(
        "launch", help="run train on several processes or GPUs (torchrun) and end with one line",
        description="Run `train` on N processes with PyTorch's launcher (torchrun); see train --help for what "
                    "several processes compute.",
        epilog=LAUNCH_EPILOG + "\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nproc-per-node", type=_positive_int, default=1, metavar="N",
                   help="processes on this machine, one per GPU (default: 1)")
    p.add_argument("--nnodes", default="1", help="machines taking part (torchrun's --nnodes; default: 1)")
    p.add_argument("--node-rank", type=_non_negative_int, default=None, help="this machine's number (torchrun's)")
    p.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                   help="where the machines meet (torchrun's --rdzv-endpoint; default: this machine)")
    p.add_argument("--rdzv-id", default=None, help="the job's id, the same on every machine (torchrun's)")
    # not "command": that is the subcommand's own name in the parsed arguments
    p.add_argument("rank_argv", nargs=argparse.REMAINDER, metavar="train ...",
                   help="the command every process runs: train and its flags")


def _launcher_words(args: argparse.Namespace) -> list[str]:
    """The torchrun options ``args`` gives, as words (``--name=value``: a value is never a flag)."""
    words = [f"--nproc-per-node={args.nproc_per_node}", f"--nnodes={args.nnodes}"]
    for name in ("node_rank", "rdzv_endpoint", "rdzv_id"):
        value = getattr(args, name)
        if value is not None:
            words.append(f"--{name.replace('_', '-')}={value}")
    if args.rdzv_endpoint is not None:
        words.append("--rdzv-backend=c10d")
    return words


def _quiet_launcher_logs() -> None:
    """Silence the launcher's own log (its warnings and its error table): the ranks print what
    matters and :func:`_launch` ends with the outcome."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _outcome(rank: int, code: int) -> str:
    """One line for the exit of the rank that failed first (``code`` as a shell shows it)."""
    if code > 128 and code - 128 in STOP_SIGNALS:
        return (f"launch: the ranks stopped on {signal.Signals(code - 128).name} (exit code {code}); rank 0's "
                f"line above says what was saved and how to resume")
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return (f"launch: rank {rank} was killed by {name} (exit code {code}); the run's last checkpoint is what "
                f"was saved before")
    if code == 2:
        return f"launch: rank {rank} refused the command line (exit code 2); its error is above"
    return f"launch: rank {rank} failed (exit code {code}); its error is above"


def _launch(args: argparse.Namespace) -> int:
    """``torch.distributed.run`` in this process, with its failure turned into one line and the
    ranks' exit code (a rank killed by signal n: 128 + n, as a shell reports it)."""
    if args.rank_argv[:1] != ["train"]:
        raise _UsageError("launch: give the command every process runs after the launcher's options, e.g. "
                          "launch --nproc-per-node 2 train --device cpu --out runs/ddp")
    from torch.distributed import run as torchrun  # the launcher: loaded only for this command
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    launcher = _launcher_words(args)
    # The ranks print their resume command with this launcher, not with plain torchrun.
    os.environ[LAUNCH_ENV] = shell_join([*cli_prefix(), "launch", *launcher])
    torch_args = torchrun.parse_args([*launcher, "-m", "vae_course", *args.rank_argv])
    _quiet_launcher_logs()
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    _STOP.note = lambda name: f"Interrupted by {name} while the ranks were starting; nothing was trained or saved."
    try:
        torchrun.run(torch_args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        code = failure.exitcode if failure.exitcode >= 0 else 128 - failure.exitcode
        print(_outcome(rank, code), file=sys.stderr)
        return code
    except SignalException as err:  # the launcher itself got the signal and passed it on to the ranks
        name = signal.Signals(err.sigval).name
        print(f"launch: stopped by {name} (exit code {128 + err.sigval}); the ranks were given the signal, and "
              f"rank 0's line above says what was saved and how to resume", file=sys.stderr)
        return 128 + int(err.sigval)
    finally:
        for signum, handler in handlers.items():  # the launcher's handlers raise its own exception
            signal.signal(signum, handler)
    return 0


class _UsageError(Exception):
    """A bad command line found after parsing: one line and exit code 2."""


# ---------------------------------------------------------------- failures: one line, one exit code
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error_message(err: OSError) -> str:
    """One line for an operating-system failure: what failed, where, and what to do."""
    where = f": {err.filename}" if getattr(err, "filename", None) else ""
    if err.errno == errno.ENOSPC:
        return (f"no space left on the device{where}; free some space or choose another --out "
                f"(the last complete checkpoint, if any, was kept)")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{err.strerror}{where}; check the permissions, or choose another folder"
    return f"{err.strerror or type(err).__name__}{where}" if err.strerror else _one_line(err)


class _StopNote:
    """What a stop signal means at this moment, outside training (training has its own handler:
    :class:`vae_course.signals.StopSignals`). The commands update ``note`` as they go."""

    BEFORE_TRAINING = staticmethod(lambda name: f"Interrupted by {name} before training started; nothing was "
                                                f"trained or saved.")

    def __init__(self) -> None:
        self.note: Callable[[str], str] = self.BEFORE_TRAINING


_STOP = _StopNote()


class _RankFollows(Exception):
    """A torchrun rank other than 0 stopping because rank 0 did (a refusal or a signal): rank 0
    printed the one line; this rank exits with ``code`` and prints nothing."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def _signals_stop_outside_training() -> Iterator[None]:
    """Until training installs its own handler (and after it), Ctrl-C, SIGTERM and SIGHUP stop
    the CLI with one line saying what state things are in (``_STOP.note``) and 128 + n."""
    def stop(signum, frame):
        raise TrainingInterrupted(_STOP.note(signal.Signals(signum).name), signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is stop:  # not if replaced on purpose (a torchrun rank leaving)
                signal.signal(signum, handler)


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the exit flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _error(message: str) -> None:
    try:
        print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


COMMANDS = {"train": _train, "evaluate": _evaluate, "bench": run_bench_command, "launch": _launch}
NOTES = {  # what a stop signal during each command means, before anything else is known
    "evaluate": lambda name: f"Interrupted by {name} during evaluate; nothing was written.",
    "bench": lambda name: f"Interrupted by {name} during bench; no result file was written.",
    "launch": lambda name: f"Interrupted by {name} before the ranks started; nothing was trained or saved.",
}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every failure ends in one line on stderr and an exit code (see EXIT_CODES)."""
    _STOP.note = _StopNote.BEFORE_TRAINING
    with _signals_stop_outside_training():
        try:
            args = build_parser().parse_args(argv)
            _STOP.note = NOTES.get(args.command, _StopNote.BEFORE_TRAINING)
            return COMMANDS[args.command](args)
        except _RankFollows as err:
            return err.code
        except _UsageError as err:
            _error(str(err))
            return 2
        except TrainingInterrupted as err:
            print(_one_line(err) or "Interrupted.", file=sys.stderr)
            return 128 + err.signum
        except KeyboardInterrupt as err:
            print(_one_line(err) or "Interrupted.", file=sys.stderr)
            return 128 + signal.SIGINT
        except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as other tools do
            _quiet_stdout()
            return 128 + getattr(signal, "SIGPIPE", 13)
        except (ValueError, TypeError, DataNotFoundError, CheckpointError, TrainingDiverged, RunFolderError,
                CacheDirError) as err:
            _error(str(err))
            return 1
        except OSError as err:
            _error(_os_error_message(err))
            return 1
        except Exception as err:  # noqa: BLE001 - a bug: still one line, unless debugging
            if os.environ.get("VAE_COURSE_DEBUG", "").strip() not in ("", "0"):
                raise
            _error(f"unexpected {type(err).__name__}: {err}. This is a bug in vae_course: please report it "
                   f"with the command you ran (VAE_COURSE_DEBUG=1 shows the full traceback)")
            return 1
