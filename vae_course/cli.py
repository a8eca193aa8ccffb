"""The command-line interface: ``python -m vae_course {train,evaluate,bench}``.

Every error a user can cause (a bad flag, a missing file, a broken checkpoint)
ends in one readable line and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import datetime
import errno
import json
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from .arguments import non_negative_float as _non_negative_float
from .arguments import non_negative_int as _non_negative_int
from .arguments import positive_float as _positive_float
from .arguments import positive_int as _positive_int
from .checkpoint import (CheckpointError, epoch_of, history_of, load_checkpoint, model_from_checkpoint, model_name_of,
                         torch_version_of, train_config_of)
from .data import BINARIZE_MODES, DATASETS, DataNotFoundError, load_data
from .device import DEVICE_CHOICES, device_name, get_device
from .distributed import DistContext, broadcast_flag, launched_by_torchrun
from .evaluate import evaluate_elbo, iwae_nll
from .models import MODELS
from .plots import reconstruction_pairs, save_grid
from .bench import add_bench_parser, run_bench_command
from .run_folder import RunFolderError, open_run_folder
from .settings import CacheDirError
from .config import RESUME_FIXED, TrainConfig, default_config, flag_name, on_resume
from .signals import TrainingInterrupted
from .train import Trainer, TrainingDiverged

GRAYSCALE_LABEL = "BCE bound on grayscale pixels, not a likelihood"

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

Several processes or GPUs: launch the same command with PyTorch's torchrun, one process per GPU:
  torchrun --nproc_per_node 4 -m vae_course train --device cuda --out runs/ddp ...   # 4 GPUs, NCCL
  torchrun --nproc_per_node 2 -m vae_course train --device cpu --out runs/ddp ...    # 2 CPU processes, gloo
--batch-size is then the global batch: each process trains on its slice of every batch and
DistributedDataParallel averages the gradients, so N processes compute what one process computes
with the same --batch-size (up to float rounding). Rank 0 alone prints, writes the checkpoint,
metrics and images; --resume and Ctrl-C/SIGTERM work as with one process (a signal to any rank
stops all after the same step). Expect near-linear speed-up while each GPU's share of the batch
keeps it busy, less once the per-GPU batch gets small; MNIST is too small to need it. Not with
--free-bits (its floor would apply per slice) or --compile.
"""

EXIT_CODES = """\
exit codes:
  0      success
  1      a runtime, data, checkpoint or file-system error (one line on stderr says what to do)
  2      a usage error: an unknown flag or a bad value
  128+n  stopped by signal n, after saving a checkpoint: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP
  141    the output pipe was closed (e.g. ... | head)
Set VAE_COURSE_DEBUG=1 to see the full traceback of an unexpected error.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and one line (no usage dump) on a bad flag."""

    def error(self, message: str) -> None:  # noqa: D401
        self.exit(2, f"error: {message} (see: python -m vae_course {self.prog.split()[-1]} --help)\n")


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model and print the seed's per-epoch log",
        description="Train an autoencoder or VAE on MNIST / Fashion-MNIST.",
        epilog=TRAIN_EPILOG + "\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Defaults are None so that --resume can tell which flags the user really gave.
    d = TrainConfig()
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help=f"ae: plain autoencoder; vae: the seed's 784-400-20 MLP VAE; conv-vae: convolutional "
                        f"VAE; cvae: conditional VAE (default: {d.model})")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None, help=f"(default: {d.dataset})")
    p.add_argument("--binarize", choices=BINARIZE_MODES, default=None,
                   help="none: grayscale pixels in [0,1] as in the PyTorch example; dynamic: a fresh "
                        "Bernoulli sample each epoch, as in the papers (needed for likelihoods comparable "
                        f"to them); static: one fixed sample (default: {d.binarize})")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"total number of epochs, also when resuming (default: {d.epochs})")
    p.add_argument("--batch-size", type=_positive_int, default=None, help=f"(default: {d.batch_size})")
    p.add_argument("--latent-dim", type=_positive_int, default=None,
                   help=f"size of z (default: {d.latent_dim}; 2 lets you plot the latent space)")
    p.add_argument("--hidden-dim", type=_positive_int, default=None, help="hidden units (default: the model's)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="Adam learning rate; with --lr-schedule cosine, the starting (peak) rate. Default for --model "
                        "vae: 5e-3 with a cosine schedule (tuned on a validation split); for the other models, "
                        f"and whenever --lr, --lr-schedule or --batch-size is given: {d.lr:g}, constant")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default=None,
                   help="constant: the same rate throughout (the canonical PyTorch example); cosine: decay "
                        f"from --lr to 0 along half a cosine over the run's epochs (default: {d.lr_schedule})")
    p.add_argument("--schedule-epochs", type=_positive_int, default=None,
                   help="length of the cosine schedule in epochs (default: --epochs). When you will train in "
                        "several --resume steps, set it to the planned total at the start: the rate then "
                        "follows one schedule and the result equals training in one go")
    p.add_argument("--beta", type=_non_negative_float, default=None,
                   help="weight of the KL term; 1 is the ELBO, other values give a beta-VAE "
                        f"(not a likelihood bound) (default: {d.beta:g})")
    p.add_argument("--kl-warmup-epochs", type=_non_negative_float, default=None,
                   help="ramp beta linearly from 0 over this many epochs (KL annealing; default: 0)")
    p.add_argument("--free-bits", type=_non_negative_float, default=None,
                   help="free bits: floor, in nats, on each latent dimension's batch-average KL (default: 0)")
    p.add_argument("--seed", type=_non_negative_int, default=None, help=f"random seed (default: {d.seed})")
    p.add_argument("--device", choices=DEVICE_CHOICES, default=None,
                   help="auto picks CUDA, then Apple MPS, then the CPU (default: auto)")
    p.add_argument("--limit-train", type=_positive_int, default=None,
                   help="use only the first N training images (quick experiments)")
    p.add_argument("--limit-test", type=_positive_int, default=None, help="use only the first N test images")
    p.add_argument("--val-size", type=_non_negative_int, default=None,
                   help="hold out the last N training images as a validation set (default: 0)")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision on a CUDA GPU (bf16 where supported, else fp16)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the training step")
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
        prog="python -m vae_course",
        description="Train and evaluate the course's autoencoders and VAEs from a terminal.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,bench}", parser_class=_Parser)
    sub.required = True
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    add_bench_parser(sub)
    return parser


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
        if trainer.epoch >= trainer.config.epochs:
            print(f"Nothing to do: the checkpoint already has {trainer.epoch} of {trainer.config.epochs} epochs.")
        trainer.fit()
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
            raise problem or RunFolderError(f"--out: rank 0 could not use {out} (its error says why)")
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
            path = _write_images(trainer, out) if ctx.is_main else None
            ctx.barrier()  # the run is complete on disk before any rank reports success
        except TrainingInterrupted as err:
            # Every rank is leaving with 128 + n; torchrun sends SIGTERM to the ranks still alive
            # once the first has exited, which must not turn their exit into a kill.
            _ignore_stop_signals()
            if ctx.is_main:
                raise
            raise TrainingInterrupted(f"Rank {ctx.rank} stopped with the others.", err.signum) from None
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
IWAE_WARN_SECONDS = 60  # warn before an IWAE estimate expected to take longer than this


def _random_subset(x: Tensor, y: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """``n`` test images drawn without replacement, kept in test-set order."""
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(SUBSET_SEED))[:n].sort().values
    return x[idx], y[idx]


def _iwae_seconds_estimate(model, x: Tensor, y: Tensor | None, k: int) -> float:
    """Time the IWAE estimate on 2 images and scale to all of ``x`` (seconds, roughly)."""
    n = min(2, len(x))
    start = time.perf_counter()
    iwae_nll(model, x[:n], None if y is None else y[:n], k=k, progress=False)
    return (time.perf_counter() - start) * len(x) / n


def _evaluate(args: argparse.Namespace) -> int:
    state = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(state)
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
        "date": datetime.date.today().isoformat(), "command": "python -m vae_course " + " ".join(sys.argv[1:]),
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
        expected = _iwae_seconds_estimate(model, x, y, args.iw_samples)
        if expected > IWAE_WARN_SECONDS:
            print(f"Note: the IWAE estimate (K={args.iw_samples}, {len(x)} images) will take about "
                  f"{expected / 60:.0f} min on {result['device']} (from a timed probe); --sample-test or a "
                  f"smaller --iw-samples makes it shorter.", file=sys.stderr, flush=True)
        iw = iwae_nll(model, x, y, k=args.iw_samples, progress=not args.json)
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


@contextmanager
def _signals_raise_while_starting() -> Iterator[None]:
    """Until training installs its own handler, SIGTERM and SIGHUP stop the CLI like
    Ctrl-C does: one line and the exit code 128 + n, not a silent kill."""
    def stop(signum, frame):
        raise TrainingInterrupted(f"Interrupted by {signal.Signals(signum).name} before anything was trained.",
                                  signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), stop)
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


COMMANDS = {"train": _train, "evaluate": _evaluate, "bench": run_bench_command}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every failure ends in one line on stderr and an exit code (see EXIT_CODES)."""
    with _signals_raise_while_starting():
        try:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command](args)
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
