"""vae_course: the helper package of the course "Variational autoencoders in PyTorch".

The notebooks write the key pieces inline (so you see them) and then check them
equal to the versions here; everything else (data, training loop, plots) is
imported from here. Where things live:

=================  =====================================================
``data``           MNIST / Fashion-MNIST as tensors, binarization, batches
``models``         ``Autoencoder``, ``VAE`` (the seed's), ``ConvVAE``, ``CVAE``
``losses``         ``reparameterize``, ``kl_divergence``, reconstruction terms, IWAE
``train``          ``Trainer`` / ``train``: the training loop, checkpoints each epoch
``evaluate``       test ELBO and the importance-weighted NLL
``checkpoint``     atomic saving and safe (``weights_only``) loading
``plots``          image grids, latent scatter plots, loss curves
``checks``         instant checks for the exercises
``pretrained``     trained models shared between notebooks (cached)
=================  =====================================================
"""
__version__ = "0.1.0"

from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .data import DataNotFoundError, load_data
from .device import get_device
from .models import CVAE, VAE, Autoencoder, ConvVAE, build_model
from .rng import seed_everything
from .settings import smoke_mode
from .train import TrainConfig, Trainer, TrainingDiverged, train_model

__all__ = [
    "Autoencoder", "VAE", "ConvVAE", "CVAE", "build_model",
    "TrainConfig", "Trainer", "TrainingDiverged", "train_model",
    "load_data", "DataNotFoundError", "get_device", "seed_everything", "smoke_mode",
    "load_checkpoint", "save_checkpoint", "model_from_checkpoint", "CheckpointError",
]
