"""Trained models that one notebook borrows from another.

Every notebook runs on its own in a fresh kernel, so when notebook 6 wants the
MLP VAE of notebook 5 it calls ``pretrained("vae-mnist")``: the model is trained
the first time (with the settings in :data:`PRETRAINED`) and cached in
``<cache>/pretrained/<name>-<hash>/checkpoint.pt``, the hash being that of its
full training configuration — change a setting and a new model is trained.
In smoke mode (``VAE_COURSE_SMOKE=1``) the models are trained on a small
subset for one epoch, and cached under a different hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import epoch_of, history_of, load_checkpoint, model_from_checkpoint
from .settings import cache_dir, smoke_mode
from .config import TrainConfig, affects_weights, default_config
from .train import Trainer
from .weights import shipped_history, shipped_model

# The canonical PyTorch example's optimizer settings, given explicitly so that the
# tuned recipe (train.default_config) does not apply: these models are the ones
# the notebooks were written and checked with.
CANONICAL = {"lr": 1e-3, "lr_schedule": "constant", "batch_size": 128}

# name -> the training settings (anything TrainConfig accepts).
PRETRAINED: dict[str, dict[str, Any]] = {
    # notebook 5's model: the seed's MLP VAE, grayscale MNIST, 10 epochs (canonical example settings)
    "vae-mnist": {"model": "vae", "epochs": 10, **CANONICAL},
    # a 2-D latent space that can be drawn (notebook 7)
    "vae-2d": {"model": "vae", "latent_dim": 2, "epochs": 20, **CANONICAL},
    # the conditional VAE (notebooks 8 and 9)
    "cvae-mnist": {"model": "cvae", "epochs": 20, **CANONICAL},
    # binarized-data models for likelihoods and anomaly detection (notebooks 6 and 9)
    "vae-mnist-binary": {"model": "vae", "binarize": "dynamic", "epochs": 20, **CANONICAL},
    "vae-fashion-binary": {"model": "vae", "dataset": "fashion-mnist", "binarize": "dynamic", "epochs": 20,
                           **CANONICAL},
    # notebook 1's plain autoencoder with a 2-D code, for notebook 7's autoencoder-vs-VAE table
    "ae-2d": {"model": "ae", "latent_dim": 2, "epochs": 3, **CANONICAL},
    # notebook 8's posterior-collapse study: 50-D latents, the plain ELBO and its two cures
    "vae-50d": {"model": "vae", "binarize": "dynamic", "latent_dim": 50, "epochs": 15, **CANONICAL},
    "vae-50d-warmup": {"model": "vae", "binarize": "dynamic", "latent_dim": 50, "epochs": 15,
                       "kl_warmup_epochs": 5, **CANONICAL},
    "vae-50d-freebits": {"model": "vae", "binarize": "dynamic", "latent_dim": 50, "epochs": 15,
                         "free_bits": 0.25, **CANONICAL},
    # notebook 6's flagship: the ConvVAE long run (a cosine schedule fixed before training;
    # nothing was decided on the test set). Its evaluation: vae_course/results/conv_vae_long.json
    "conv-vae-long": {"model": "conv-vae", "binarize": "dynamic", "latent_dim": 50, "epochs": 50,
                      "lr": 1e-3, "lr_schedule": "cosine", "schedule_epochs": 50, "batch_size": 128},
}
SMOKE_SETTINGS = {"epochs": 1, "limit_train": 2000, "limit_test": 500}


def pretrained_config(name: str, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` that ``pretrained(name)`` trains with."""
    if name not in PRETRAINED:
        raise ValueError(f"name: unknown pretrained model {name!r}; choose one of {sorted(PRETRAINED)}")
    settings = {**PRETRAINED[name], **(SMOKE_SETTINGS if smoke_mode() else {}), **overrides}
    try:
        return default_config(**settings)
    except (TypeError, ValueError) as err:
        raise ValueError(f"overrides: {err}") from None


def config_key(config: TrainConfig) -> str:
    """A 12-hex-digit hash of the settings that shape the trained weights.

    Only settings that differ from the defaults of ``config``'s class count, so
    adding a new setting to the package (with a default) does not invalidate every
    cached model; settings declared ``affects_weights=False`` (device, log
    interval) never count.
    """
    defaults = asdict(type(config)())
    hashed = {f.name: getattr(config, f.name) for f in fields(config)
              if affects_weights(f) and getattr(config, f.name) != defaults.get(f.name)}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]


def pretrained_dir(name: str, **overrides: Any) -> Path:
    """The cache folder of this model and configuration.

    The key hashes only the settings that differ from :class:`TrainConfig`'s
    defaults, so adding a new setting to the package (with a default) does not
    invalidate every cached model.
    """
    return cache_dir() / "pretrained" / f"{name}-{config_key(pretrained_config(name, **overrides))}"


def pretrained(name: str, verbose: bool = True, **overrides: Any) -> nn.Module:
    """A trained model by name (trained and cached on first use), in eval mode on the CPU.

    ``overrides`` change training settings (e.g. ``epochs=5``); each distinct
    configuration is cached separately. The checkpoint (with the training
    history) is ``pretrained_dir(name) / "checkpoint.pt"``.
    """
    if not overrides:  # known-good weights that ship with the package (VAE_COURSE_RETRAIN=1: train)
        shipped = shipped_model(name, expected=_shipped_config(name))
        if shipped is not None:
            return shipped
    folder = pretrained_dir(name, **overrides)
    path = folder / "checkpoint.pt"
    config = pretrained_config(name, **overrides)
    if path.is_file():
        state = load_checkpoint(path)
        if epoch_of(state) >= config.epochs:
            return model_from_checkpoint(state).eval()
    if verbose:
        print(f"Training the pretrained model {name!r} ({config.epochs} epochs); it is cached in {folder}")
    # Train into a private folder and publish the finished checkpoint with one atomic
    # rename, so two notebooks training the same model at once never see half of one.
    scratch = folder.with_name(f".{folder.name}.{os.getpid()}.training")
    trainer = Trainer(config=config, out_dir=scratch, log=None, progress=verbose)
    trainer.fit()
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(scratch / "checkpoint.pt", path)
    os.replace(scratch / "metrics.json", folder / "metrics.json")
    shutil.rmtree(scratch, ignore_errors=True)
    return trainer.model.cpu().eval()


def _shipped_config(name: str) -> dict[str, Any] | None:
    """The full-mode configuration a shipped copy of ``name`` must have been trained with
    (shipped weights are full-mode models, so they stand in for smoke mode's too);
    ``None`` for a name this package does not train (its shipped copy is taken as is)."""
    return asdict(default_config(**PRETRAINED[name])) if name in PRETRAINED else None


def pretrained_history(name: str, **overrides: Any) -> list[dict[str, float]]:
    """The per-epoch training history of a pretrained model (training it if needed)."""
    if not overrides:
        history = shipped_history(name, expected=_shipped_config(name))
        if history is not None:
            return history
    pretrained(name, verbose=False, **overrides)
    return history_of(load_checkpoint(pretrained_dir(name, **overrides) / "checkpoint.pt"))
