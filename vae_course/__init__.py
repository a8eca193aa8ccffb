"""vae_course: the helper package of the course "Variational autoencoders in PyTorch".

The notebooks write the key pieces inline (so you see them) and then check them
equal to the versions here; everything else (data, training loop, plots) is
imported from here. Where things live:

=================  =====================================================
``settings``       the cache folder, smoke mode, where tools may write
``data``           MNIST / Fashion-MNIST as tensors, binarization, batches
``models``         ``Autoencoder``, ``VAE`` (the seed's), ``ConvVAE``, ``CVAE``
``losses``         ``reparameterize``, ``kl_divergence``, reconstruction terms, the objective, IWAE
``schedules``      learning-rate and KL warm-up schedules
``config``         ``TrainConfig``: every setting, its resume policy, the one set of defaults
``signals``        one handler for Ctrl-C, SIGTERM and SIGHUP: finish the step, save, stop
``errors``         the user-facing errors: one line in a terminal and in a notebook
``commands``       the commands the package suggests (resume...), quoted, safe to paste
``arguments``      the command line's argument types
``version``        the package's version
``hashing``        file checksums (data archives, cache stamps, shipped weights)
``checkpoint_checks`` every check a checkpoint passes before use (bounded memory)
``bench_runs``     one side of the benchmark, in its own process
``train``          ``train_epoch`` (the loop), ``Trainer`` / ``train_model``, stop signals, resume
``run_folder``     one owner for a run's ``--out`` folder: lock, no silent overwrite, atomic writes
``run_log``        the run's diary (``sessions.jsonl``): every start, interruption and resume
``checkpoint``     the checkpoint format: write, validate everything, read, migrate
``inference``      running a model over a dataset: eval mode, batch by batch
``evaluate``       test ELBO and the importance-weighted NLL (memory-bounded)
``distributed``    several processes / GPUs with ``torchrun`` (DistributedDataParallel)
``device``         choosing CUDA, MPS or the CPU
``threads``        the CPU's torch threads: one per core no other process keeps busy
``rng``            seeding and saving every random-number state
``plots``          image grids, latent scatter plots, loss curves
``diagrams``       pictures of the model: architecture, reparameterization, ELBO, posteriors
``widgets``        the interactive explorers (ipywidgets 7.7 and 8)
``interpolation``  straight and spherical paths between two latent codes
``latent_metrics`` holes and between-cluster measures of a latent space (AE vs VAE)
``generalization`` train-vs-test ELBO and the overfitting experiment
``uncertainty``    the encoder's sigma on clean, noisy, occluded and overlaid digits
``probes``         linear classifiers on latent codes vs pixels (feature extraction)
``diagnostics``    active units, KL per dimension, rate and distortion
``applications``   anomaly scores, AUROC, augmentation, compression, imputation
``estimators``     score-function vs pathwise gradient estimators (notebook 3)
``toy_models``     the linear-Gaussian toy model with an exact posterior (notebook 2)
``checks``         instant checks for the exercises, one module per notebook
``pretrained``     trained models shared between notebooks (shipped weights, else cached)
``weights``        the shipped weights' manifest and checksums
``results``        the committed measurements the pages show
``provenance``     commit, CPU, load average: where a number came from
``bench``          the fair speed benchmark (each side in its own process)
``cli``            ``python -m vae_course train|evaluate|bench``
=================  =====================================================
"""
# First, before torch loads (seconds): when this import starts the CLI, a stop signal
# ends it with one line and exit code 128 + n, not a traceback or a silent kill.
from . import signals as _signals

if _signals.started_as_cli():
    _signals.install_startup_handlers()

from .version import __version__  # noqa: E402

# settings first: it points matplotlib and TorchInductor at the cache before they load
from . import settings  # noqa: F401
from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .data import DataNotFoundError, load_data
from .device import get_device
from .models import CVAE, VAE, Autoencoder, ConvVAE, build_model
from .rng import seed_everything
from .settings import smoke_mode
from .train import TrainConfig, Trainer, TrainingDiverged, TrainingInterrupted, default_config, train_epoch, train_model

__all__ = [
    "Autoencoder", "VAE", "ConvVAE", "CVAE", "build_model",
    "TrainConfig", "Trainer", "TrainingDiverged", "TrainingInterrupted", "default_config", "train_epoch",
    "train_model",
    "load_data", "DataNotFoundError", "get_device", "seed_everything", "smoke_mode",
    "load_checkpoint", "save_checkpoint", "model_from_checkpoint", "CheckpointError",
]
