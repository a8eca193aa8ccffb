"""The training loop shared by the CLI and the notebooks.

:func:`train_epoch` is the loop itself, short enough to read in one go (notebook 5
shows it): zero the gradients, compute the loss, backpropagate, step, add up.
:class:`Trainer` runs it epoch after epoch and does everything around it: set-up,
evaluation, the seed's log, checkpoints, resume, and stopping cleanly on a signal.

Why it is fast (see the "Results and benchmarks" page for the numbers):

* the whole dataset sits on the training device as one tensor, and batches are
  cut by indexing a random permutation (:func:`vae_course.data.tensor_batches`);
* the loop never waits for the device: running sums are accumulated *on the
  device* and read only every ``log_every`` steps and at the end of the epoch
  (``.item()`` in the inner loop would stall a GPU);
* ``zero_grad(set_to_none=True)`` and a fused Adam (one kernel for all
  parameters) cut per-step overhead; on a GPU, mixed precision and
  ``channels_last`` speed up the convolutional model.

Why it is safe: checkpoints are written atomically after every epoch and when a
signal (Ctrl-C, SIGTERM, SIGHUP) stops training; they hold every random-number
state (so resuming is exact), and a NaN/inf loss stops training with a message,
keeping the last good checkpoint.

Several processes (``torchrun``, see :mod:`vae_course.distributed`): given a
distributed context, the Trainer wraps the model in DistributedDataParallel,
gives each rank its slice of every global batch, adds the epoch's sums over the
ranks, evaluates on disjoint slices of the test set, and lets rank 0 alone log,
save and show the progress bar. Without one, nothing of this runs.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from .progress import progress  # tqdm's notebook bar only where it can draw (never a warning)

# The settings and the stop signals live in their own modules; they are re-exported
# here because "from vae_course.train import TrainConfig" is how the notebooks say it.
from .config import (RECOMMENDED_SETTINGS, RESUME_FIXED, RESUME_FREE, RESUME_IF_CONSTANT_LR,  # noqa: F401
                     TrainConfig, affects_weights, default_config, flag_name, on_resume, recommended_settings,
                     resumed_config)
from .commands import resume_command
from .checkpoint import (epoch_of, load_checkpoint, model_from_checkpoint, restore_training_state, save_checkpoint,
                         train_config_of, training_state)
from .data import DataSplits, load_data, tensor_batches
from .device import get_device
from .distributed import (DistContext, ShardedObjective, agree_signal, all_reduce_sums, broadcast_flag,
                          evaluate_sharded, global_mean, wrap_model)
from .evaluate import evaluate_elbo
from .losses import objective_terms
from .models import build_model
from .rng import seed_everything
from .run_folder import BEST_NAME, atomic_write_text, keep_copy
from .run_log import append_event, session_facts
from .schedules import LR_SCHEDULES, beta_at, lr_at
from .signals import STOP_SIGNALS, StopSignals, TrainingInterrupted  # noqa: F401

__all__ = [
    "TrainConfig", "Trainer", "TrainingDiverged", "TrainingInterrupted", "EpochSums", "train_epoch",
    "train_model", "default_config", "recommended_settings", "RECOMMENDED_SETTINGS", "lr_at", "LR_SCHEDULES",
]

class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint (if any) was kept."""


# ---------------------------------------------------------------- the loop
@dataclass
class EpochSums:
    """What one pass over the data adds up, kept on the device until it is read."""

    recon_kl: Tensor  # (2,) float64: reconstruction and KL, each summed over examples (nats)
    beta_kl: Tensor | float  # beta * KL summed over examples: a tensor when beta changed during the epoch, else beta
    count: int = 0  # examples seen
    stopped: bool = False  # should_stop() ended the epoch early

    def totals(self) -> Tensor:
        """``(3,)`` float64 on the device: loss (recon + beta * KL), recon and KL, summed."""
        recon, kl = self.recon_kl
        weighted = kl * self.beta_kl if isinstance(self.beta_kl, float) else self.beta_kl
        return torch.stack((recon + weighted, recon, kl))


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    beta: float | Callable[[int], float] = 1.0,
    free_bits: float = 0.0,
    lr: Callable[[int], float] | None = None,
    objective: Callable[..., tuple[Tensor, Tensor, Tensor]] = objective_terms,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    check_every: int = 50,
    on_check: Callable[[int, EpochSums], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_mean: Callable[[Tensor, int], Tensor] | None = None,
) -> EpochSums:
    """One pass over ``batches`` of ``(x, y)``: the canonical PyTorch training loop.

    ``beta`` and ``lr`` may be schedules: functions of the step within the epoch
    (0, 1, ...). ``on_check(steps_done, sums)`` runs every ``check_every`` steps
    and after the last one: the only moments the loop reads the device.
    ``should_stop()`` is asked after every step (a Ctrl-C flag).
    ``batch_mean(per_example_loss, batch_size)`` turns the objective's per-example
    losses into the step's loss (default: their mean); under DDP the objective sees
    the global batch but returns this rank's slice, and ``global_mean`` weights it.
    Returns the epoch's sums (nats, summed over examples; divide by ``count``).
    """
    model.train()
    recon_kl = torch.zeros(2, dtype=torch.float64, device=next(model.parameters()).device)
    beta_kl: Tensor | float = float(beta) if not callable(beta) else torch.zeros_like(recon_kl[0])
    sums, done = EpochSums(recon_kl, beta_kl), 0
    for step, (x, y) in enumerate(batches):
        b = beta(step) if callable(beta) else beta  # KL warm-up: beta grows within the epoch
        if lr is not None:  # a schedule: a Python float per step, no device work
            for group in optimizer.param_groups:
                group["lr"] = lr(step)
        optimizer.zero_grad(set_to_none=True)  # None, not zeros: no kernel per parameter
        # Mixed precision on a GPU (autocast_dtype bf16/fp16); a no-op otherwise.
        with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            recon, kl, kl_for_loss = objective(model, x, y, free_bits)  # (batch,) each, nats
            per_example = recon + b * kl_for_loss
            loss = per_example.mean() if batch_mean is None else batch_mean(per_example, len(x))  # nats per example
        if scaler is None:
            loss.backward()
            optimizer.step()  # a fused Adam: one kernel updates every parameter
        else:  # fp16: scale the loss so that small gradients do not underflow to zero
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        # Running sums stay on the device, in float64: no .item() here, which would
        # make the CPU wait for the GPU at every step.
        with torch.no_grad():
            terms = torch.stack((recon.detach().sum(), kl.detach().sum()))
            recon_kl += terms
            if callable(beta):
                beta_kl.add_(terms[1], alpha=b)
        sums.count += len(x)
        done = step + 1
        if on_check is not None and done % check_every == 0:
            on_check(done, sums)
        if should_stop is not None and should_stop():
            sums.stopped = True
            return sums
    if on_check is not None and done % check_every != 0:
        on_check(done, sums)
    return sums


def _print(*args: Any) -> None:
    print(*args, flush=True)


@dataclass
class Trainer:
    """Trains one model on one dataset; the CLI and the notebooks both use it.

    Typical use::

        trainer = Trainer(TrainConfig(model="vae", epochs=10), out_dir="runs/vae")
        history = trainer.fit()          # prints the seed's log after every epoch
        trainer.model                    # the trained model

    ``out_dir`` (optional) receives ``checkpoint.pt`` and ``metrics.json`` after
    every epoch. :meth:`Trainer.resume` continues from such a folder. The trainer
    works on its own copy of ``config``; ``data``, when given, must be the data
    the config describes (same dataset and binarization, and the sizes it sets).

    ``dist``: this process's place in a ``torchrun`` job
    (:meth:`vae_course.distributed.DistContext.from_env`). Every rank builds a
    Trainer with the same settings; ``config.batch_size`` is the *global* batch
    and the device is the context's (GPU ``LOCAL_RANK``, or the CPU).
    """

    config: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str | Path | None = None
    model: nn.Module | None = None
    data: DataSplits | None = None
    progress: bool = True
    log: Callable[..., None] | None = _print
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0
    dist: DistContext | None = None

    def __post_init__(self) -> None:
        self.config = replace(self.config)  # our own copy: the caller's config is never changed
        self.config.validate()
        cfg = self.config
        # _ctx: the torchrun job, or None for one process (then nothing below changes)
        self._ctx = self.dist if self.dist is not None and self.dist.is_distributed else None
        if self._ctx is not None:
            _check_distributable(cfg, self._ctx)
            self.device = self._ctx.device
            if not self._ctx.is_main:  # rank 0 alone prints
                self.log, self.progress = None, False
        else:
            self.device = get_device(cfg.device)
        seed_everything(cfg.seed)
        if self.model is None:
            self.model = build_model(cfg.model, **cfg.model_kwargs())
        elif getattr(self.model, "name", None) != cfg.model:
            raise ValueError(f"model: a {getattr(self.model, 'name', type(self.model).__name__)!r} model was "
                             f"given but config.model is {cfg.model!r}; its checkpoint could not be loaded")
        self.model.to(self.device)
        self._channels_last = cfg.model == "conv-vae" and self.device.type == "cuda"
        if self._channels_last:  # the layout cuDNN's convolutions are fastest in
            self.model.to(memory_format=torch.channels_last)
        if self.data is None:
            with self._ctx.main_first() if self._ctx else nullcontext():  # rank 0 fills the data cache first
                self.data = load_data(
                    cfg.dataset, cfg.binarize, val_size=cfg.val_size, limit_train=cfg.limit_train,
                    limit_test=cfg.limit_test, seed=cfg.seed, device=self.device,
                )
        else:
            _check_data_matches(self.data, cfg)
            self.data = self.data.to(self.device)
        fused = self.device.type in ("cuda", "cpu")  # one kernel updates every parameter
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, fused=fused)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        # The permutation generator lives on the CPU (its state goes in checkpoints);
        # the binarization noise is drawn where the data lives.
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.objective = objective_terms
        if cfg.compile:
            # dynamic=False: the short last batch gets its own graph rather than a
            # symbolic batch size (which torch.randn with a generator argument cannot take)
            self.objective = torch.compile(objective_terms, dynamic=False)
        # Under torchrun: the module DDP wraps (rank 0's weights are copied to every rank here)
        self._ddp = wrap_model(ShardedObjective(self.model, self._ctx), self._ctx) if self._ctx else None
        if self.out_dir is not None:
            self.out_dir = Path(self.out_dir)

    @property
    def is_main(self) -> bool:
        """True on the process that logs and saves: rank 0, or the only process."""
        return self._ctx is None or self._ctx.is_main

    def _amp_dtype(self) -> torch.dtype | None:
        if not self.config.amp or self.device.type != "cuda":
            return None
        major, _ = torch.cuda.get_device_capability(self.device)
        return torch.bfloat16 if major >= 8 else torch.float16  # a T4 (7.5) has no fast bf16

    def beta_at(self, epoch_progress: float) -> float:
        """beta after ``epoch_progress`` epochs (KL warm-up ramps it linearly from 0)."""
        return beta_at(self.config.beta, self.config.kl_warmup_epochs, epoch_progress)

    # ------------------------------------------------------------------ one epoch
    def _run_epoch(self, epoch: int, stop: StopSignals) -> dict[str, float] | None:
        """Train epoch ``epoch`` (1-based); its record, or ``None`` if a signal stopped it."""
        cfg, data = self.config, self.data
        x_all = data.train_x.contiguous(memory_format=torch.channels_last) if self._channels_last else data.train_x
        steps = math.ceil(len(x_all) / cfg.batch_size)
        total_steps = steps * (cfg.schedule_epochs or cfg.epochs)
        batches = tensor_batches(x_all, data.train_y, cfg.batch_size, generator=self.data_generator,
                                 dynamic_binarize=data.dynamic, noise_generator=self.noise_generator)
        bar = progress(total=steps, desc=f"epoch {epoch}/{cfg.epochs}", disable=not self.progress, leave=False)

        def check(done: int, sums: EpochSums) -> None:  # every log_every steps: the one host sync
            sums = self._sums_of_all_ranks(sums)  # every rank checks the same numbers, so all stop together
            totals = sums.totals()
            self._raise_if_diverged(~torch.isfinite(sums.recon_kl), epoch, done)
            bar.update(done - bar.n)
            bar.set_postfix(loss=f"{totals[0].item() / sums.count:.2f}")

        if self._ddp is None:
            model, objective, batch_mean, should_stop = self.model, self.objective, None, lambda: stop.raised
        else:  # the global batch goes in, this rank's slice is computed; all ranks agree on stopping
            model, objective = self._ddp, _sharded_terms
            batch_mean = lambda values, count: global_mean(values, count, self._ctx)  # noqa: E731
            should_stop = lambda: self._stop_agreed(stop)  # noqa: E731
        start, cpu_start = time.perf_counter(), time.process_time()
        sums = train_epoch(
            model, self.optimizer, batches, free_bits=cfg.free_bits, objective=objective,
            beta=cfg.beta if cfg.kl_warmup_epochs <= 0 else (lambda step: self.beta_at(epoch - 1 + step / steps)),
            lr=None if cfg.lr_schedule == "constant" else
            (lambda step: lr_at(cfg.lr, cfg.lr_schedule, ((epoch - 1) * steps + step) / total_steps)),
            autocast_dtype=self.amp_dtype, scaler=self.scaler if self.scaler.is_enabled() else None,
            check_every=cfg.log_every, on_check=check, should_stop=should_stop, batch_mean=batch_mean,
        )
        bar.close()
        if sums.stopped:
            return None
        sums = self._sums_of_all_ranks(sums)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        # CPU time of this process (all its threads): the compute an epoch cost, which a busy
        # machine stretches far less than the wall-clock seconds
        cpu_seconds = time.process_time() - cpu_start
        loss, recon, kl = (sums.totals() / sums.count).tolist()
        return {"epoch": epoch, "loss": loss, "recon": recon, "kl": kl, "beta": self.beta_at(epoch),
                "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds, "cpu_seconds": cpu_seconds,
                "images_per_second": len(x_all) / seconds}

    def _sums_of_all_ranks(self, sums: EpochSums) -> EpochSums:
        """``sums`` added over the ranks (a copy), or ``sums`` itself on one process.

        ``count`` is already the global one: every rank counts the global batches."""
        if self._ctx is None:
            return sums
        recon_kl = all_reduce_sums(sums.recon_kl.clone(), self._ctx)
        beta_kl = sums.beta_kl if isinstance(sums.beta_kl, float) else all_reduce_sums(sums.beta_kl.clone(), self._ctx)
        return EpochSums(recon_kl, beta_kl, sums.count, sums.stopped)

    def _same_gpu_noise_on_every_rank(self, state: dict[str, Any]) -> None:
        """Under torchrun on GPUs: give this rank's GPU the generator state of rank 0's GPU.

        The checkpoint holds every GPU's state as rank 0's process saw them, and only
        GPU 0 was the one in use; the ranks draw the global batch's noise from their
        own GPU's default generator, so all must continue from GPU 0's state."""
        cuda_states = state.get("rng", {}).get("cuda")
        if self._ctx is not None and self.device.type == "cuda" and cuda_states:
            torch.cuda.set_rng_state(cuda_states[0], self.device)

    def _stop_agreed(self, stop: StopSignals) -> bool:
        """Did any rank get a stop signal? One process: this one's flag. Under torchrun a
        collective (on the CPU) that every rank makes at the same points; a rank that got
        no signal takes the other's, so it exits with the same 128 + n."""
        if self._ctx is None:
            return stop.raised
        signum = agree_signal(stop.signum, self._ctx)
        if signum is not None and stop.signum is None:
            stop.signum = signum
        return signum is not None

    def _raise_if_diverged(self, bad_terms: Tensor, epoch: int, step: int) -> None:
        bad = bad_terms.tolist()
        if not any(bad):
            return
        term = " and ".join(name for name, b in zip(("reconstruction", "KL"), bad) if b)
        # The loop reads the device only every log_every steps, so the failure happened
        # at some step after the previous check and at or before this one.
        first = ((step - 1) // self.config.log_every) * self.config.log_every + 1
        where = f"step {step}" if first >= step else f"steps {first}-{step}"
        if self.out_dir is None:
            kept = ""
        elif self.epoch > 0 and (self.out_dir / "checkpoint.pt").is_file():
            kept = f" The last good checkpoint in {self.out_dir} (epoch {self.epoch}) was kept."
        else:
            kept = f" No checkpoint was written to {self.out_dir}: no epoch had finished."
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}, {where} (counting within the epoch; the loss is checked "
            f"every {self.config.log_every} steps): the {term} term became NaN or infinite.{kept} "
            f"Try a smaller learning rate (--lr, now {self.config.lr:g}) or clamp the encoder's "
            f"log-variance (e.g. logvar.clamp(-10, 10)) so exp(logvar) cannot overflow."
        )

    def _evaluate(self) -> dict[str, float]:
        data, beta = self.data, self.config.beta
        out = {}
        if not self.config.keep_test_unseen:
            test = self._evaluate_split(data.test_x, data.test_y, beta)
            out.update({f"test_{k}": v for k, v in test.items()})
        if len(data.val_x):
            val = self._evaluate_split(data.val_x, data.val_y, beta)
            out.update({f"val_{k}": v for k, v in val.items()})
        return out

    def _evaluate_split(self, x: Tensor, y: Tensor, beta: float) -> dict[str, float]:
        """``evaluate_elbo``; under torchrun each rank evaluates its own whole batches of
        ``x`` and the sums are added (every image once, the same numbers on every rank)."""
        if self._ctx is None:
            return evaluate_elbo(self.model, x, y, beta=beta)
        result = evaluate_sharded(self.model, x, y, self._ctx, beta=beta)
        result.pop("n")  # the same keys as one process's record
        return result

    # ------------------------------------------------------------------ public
    def fit(self, epochs: int | None = None) -> list[dict[str, float]]:
        """Train until ``epochs`` epochs in total (default: ``config.epochs``).

        After each epoch: evaluate on the test (and validation) set, save
        ``checkpoint.pt`` and ``metrics.json`` into ``out_dir``, and print the
        seed's four lines plus ``Test Loss``. On Ctrl-C, SIGTERM or SIGHUP: finish
        the step, save, say how to resume, and raise :class:`TrainingInterrupted`
        (a ``KeyboardInterrupt``, so a notebook's "Run all" stops); the model and
        ``history`` stay usable.
        """
        if epochs is not None:
            self.config = replace(self.config, epochs=epochs)
            self.config.validate()
        self._diary("start" if self.epoch == 0 else "resume", **self._session_facts())
        with StopSignals(escalate=self._ctx is None) as stop:
            while self.epoch < self.config.epochs:
                if self._stop_agreed(stop):  # a signal came during the last save: stop before the next epoch
                    self._stop_on_signal(stop, between_epochs=True)
                record = self._run_epoch(self.epoch + 1, stop)
                if record is None:
                    self._stop_on_signal(stop)
                self.epoch += 1
                record.update(self._evaluate())
                self.history.append(record)
                with stop.saving():
                    self.save()
                self._log_epoch(record)
            if self._stop_agreed(stop):  # during the last evaluation or save: all is saved, still stop
                self._stop_on_signal(stop, between_epochs=True)
        self._diary("finished")
        return self.history

    def _session_facts(self) -> dict[str, Any]:
        return session_facts(self.device) if self.out_dir is not None and self.is_main else {}

    def _diary(self, event: str, **facts: Any) -> None:
        """One line in the run folder's ``sessions.jsonl`` (:mod:`vae_course.run_log`), rank 0 only."""
        if self.out_dir is not None and self.is_main:
            append_event(self.out_dir, event, self.epoch, **facts)

    def _stop_on_signal(self, stop: StopSignals, between_epochs: bool = False) -> None:
        with stop.saving():
            where = self.save(interrupted=True)
        # The log says when; the exception says what was saved and how to go on, once
        # (the CLI prints it as its one line on stderr, a notebook shows it instead of a traceback).
        hint = f"Saved {where}. Resume with: {self._command()}" if where else \
            "No out_dir was given, so nothing was saved."
        name = signal.Signals(stop.signum).name
        if where:
            self._diary("interrupted", signal=name)
        when = f"after epoch {self.epoch}" if between_epochs else f"during epoch {self.epoch + 1}"
        if self.log:
            self.log(f"Interrupted {when} ({name}).")
        raise TrainingInterrupted(hint, stop.signum)

    def _command(self) -> str:
        """The shell line that resumes this run, each word quoted, starting with the program
        that was really run (:func:`vae_course.commands.resume_command`)."""
        return resume_command(self.out_dir, self.config.epochs,
                              None if self._ctx is None else self._ctx.local_world_size)

    def _log_epoch(self, r: dict[str, float]) -> None:
        if not self.log:
            return
        self.log(
            f"Epoch {r['epoch']}/{self.config.epochs}\n"
            f"Loss: {r['loss']:.2f}\n"
            f"Reconstruction Loss: {r['recon']:.2f}\n"
            f"KL Divergence: {r['kl']:.2f}"
            + (f"\nTest Loss: {r['test_loss']:.2f}" if "test_loss" in r else "")
            + (f"\nValidation Loss: {r['val_loss']:.2f}" if "val_loss" in r else "")
        )

    def state_dict(self, interrupted: bool = False) -> dict[str, Any]:
        """Everything needed to continue exactly where training stopped."""

        return training_state(self, interrupted)

    def save(self, interrupted: bool = False) -> Path | None:
        """Write ``checkpoint.pt`` and ``metrics.json`` to ``out_dir`` (if set), each atomically.

        Under torchrun rank 0 writes and every rank waits until it has; if rank 0
        fails, every rank raises."""
        if self.out_dir is None:
            return None
        if self._ctx is None:
            return self._write(interrupted)
        path, failure = self.out_dir / "checkpoint.pt", None
        if self._ctx.is_main:
            try:
                path = self._write(interrupted)
            except Exception as err:  # noqa: BLE001 - re-raised below, after the others know
                failure = err
        if broadcast_flag(failure is not None, self._ctx):  # also the barrier: the files are on disk
            raise failure or OSError(errno.EIO, "rank 0 could not write the checkpoint (its error says why)",
                                     str(path))
        return path

    def _write(self, interrupted: bool) -> Path:
        state = self.state_dict(interrupted)
        try:
            path = save_checkpoint(state, self.out_dir / "checkpoint.pt")
        except RuntimeError as err:  # torch.save reports a failed write (a full disk...) as a RuntimeError
            raise _write_error(self.out_dir / "checkpoint.pt", state, err) from None
        metrics = {"config": asdict(self.config), "history": self.history, "epoch": self.epoch}
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2))
        if not interrupted and self._best_on_validation():
            keep_copy(path, self.out_dir / BEST_NAME)
        return path

    def _best_on_validation(self) -> bool:
        """True when the last epoch has the lowest validation loss so far (early stopping's choice)."""
        losses = [h["val_loss"] for h in self.history if "val_loss" in h]
        return bool(losses) and "val_loss" in self.history[-1] and self.history[-1]["val_loss"] <= min(losses)

    @classmethod
    def resume(cls, out_dir: str | Path, *, progress: bool = True, log: Callable[..., None] | None = _print,
               config_class: type[TrainConfig] = TrainConfig, dist: DistContext | None = None,
               **settings: Any) -> "Trainer":
        """Continue the run saved in ``out_dir``; ``settings`` change :class:`TrainConfig` fields.

        Which settings may change is declared on the fields (``on_resume``):
        ``epochs`` (the new total), ``device``, ``log_every``, and ``lr`` for a run
        with the constant schedule (dividing the rate by 10 once the test loss stops
        improving is the oldest schedule of all, a "step decay"; each epoch's rate
        stays in the history). Any other setting that differs from the checkpoint's
        is a ``ValueError`` naming the flag, the saved and the given value.
        Under torchrun (``dist``) every rank loads the same checkpoint.
        """
        state = load_checkpoint(Path(out_dir) / "checkpoint.pt")
        saved = train_config_of(state, config_class)  # a bad saved setting is a CheckpointError
        config = resumed_config(saved, settings, done_epochs=epoch_of(state))
        model = model_from_checkpoint(state)
        trainer = cls(config=config, out_dir=out_dir, model=model, progress=progress, log=log, dist=dist)
        trainer.load_state(state)
        trainer._same_gpu_noise_on_every_rank(state)
        log = trainer.log
        if config.lr != saved.lr:  # load_state restored the optimizer's old rate
            for group in trainer.optimizer.param_groups:
                group["lr"] = config.lr
            if log:
                log(f"Continuing at learning rate {config.lr:g} (the run so far used {saved.lr:g}).")
        return trainer

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore weights, optimizer, history and every random-number state
        (all validated first: a bad checkpoint is a CheckpointError, nothing loaded)."""

        restore_training_state(self, state)



def _write_error(path: Path, state: dict[str, Any], err: RuntimeError) -> OSError:
    """The OSError behind a failed ``torch.save``: ENOSPC when the disk cannot hold the checkpoint."""
    needed = sum(t.nbytes for t in _tensors(state))
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"could not write the checkpoint ({' '.join(str(err).split())[:200]})", str(path))


def _tensors(obj: Any) -> Iterator[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _check_distributable(cfg: TrainConfig, ctx: DistContext) -> None:
    """The settings several processes cannot run exactly: a one-line ``ValueError``."""
    if cfg.free_bits > 0 and ctx.world_size > 1:
        raise ValueError(f"--free-bits {cfg.free_bits:g}: with {ctx.world_size} processes the floor would apply "
                         f"to each rank's slice of the batch, not to the batch; train with one process, "
                         f"or without free bits")
    if cfg.compile:
        raise ValueError("--compile: not supported under torchrun yet; leave it out")


def _sharded_terms(module: nn.Module, x: Tensor, y: Tensor, free_bits: float) -> tuple[Tensor, Tensor, Tensor]:
    """The objective under DDP: ``module`` is the wrapped :class:`ShardedObjective`
    (free bits were refused before training)."""
    return module(x, y)


def _check_data_matches(data: DataSplits, cfg: TrainConfig) -> None:
    """``data`` passed to a Trainer must be what ``cfg`` describes: its checkpoint
    records ``cfg``, and ``evaluate`` and ``--resume`` reload the data from it."""
    problems = []
    if data.name != cfg.dataset:
        problems.append(f"dataset {data.name!r} vs config.dataset {cfg.dataset!r}")
    if data.binarize != cfg.binarize:
        problems.append(f"binarize {data.binarize!r} vs config.binarize {cfg.binarize!r}")
    elif cfg.binarize == "static" and data.seed != cfg.seed:
        problems.append(f"static binarization seed {data.seed} vs config.seed {cfg.seed}")
    for name, n in (("limit_train", len(data.train_x)), ("limit_test", len(data.test_x))):
        limit = getattr(cfg, name)
        if limit is not None and n > limit:
            problems.append(f"{n} images vs config.{name}={limit}")
    if len(data.val_x) != cfg.val_size:
        problems.append(f"{len(data.val_x)} validation images vs config.val_size={cfg.val_size}")
    if problems:
        raise ValueError("data: does not match the config (" + "; ".join(problems) + "); load it with "
                         "load_data(config.dataset, config.binarize, ...) or set the config to describe it")


def train_model(config: TrainConfig | None = None, out_dir: str | Path | None = None, **overrides: Any) -> Trainer:
    """One-call training for notebooks: ``trainer = train_model(model="vae", epochs=5)``.

    Without ``config``, the settings are :func:`default_config`'s (the same as the
    CLI's, tuned recipe included); with one, exactly ``config`` with ``overrides``.
    ``config`` itself is never changed.
    """
    if config is None:
        config = default_config(**overrides)
    else:
        known = {f.name for f in fields(config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a training setting; known: {sorted(known)}")
        config = replace(config, **overrides)
    trainer = Trainer(config=config, out_dir=out_dir)
    trainer.fit()
    return trainer
