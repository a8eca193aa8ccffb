"""The four models of the course.

Every model takes images shaped ``(batch, 1, 28, 28)`` and its decoder returns
**logits** of the same shape (apply ``torch.sigmoid`` to get pixel
probabilities). Variational models share one interface:

* ``encode(x, y=None) -> (mu, logvar)``, each ``(batch, latent_dim)``;
* ``decode(z, y=None) -> logits``;
* ``forward(x, y=None) -> (logits, mu, logvar)``.

``y`` (integer labels, ``(batch,)``) is only used by :class:`CVAE`.
Each model remembers its constructor arguments in ``model.config`` so a
checkpoint can rebuild it (see :mod:`vae_course.checkpoint`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import reparameterize

IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 784
NUM_CLASSES = 10


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"x: expected images of shape (batch, 1, 28, 28), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(
            f"x: expected floating-point pixels in [0, 1], got {x.dtype} (raw bytes? use x.float() / 255)"
        )


class VariationalModel(nn.Module):
    """Shared plumbing: ``forward``, sampling from the prior, and ``config``."""

    name = "variational"
    is_variational = True
    conditional = False

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        _check_images(x)
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar)
        return self.decode(z, y), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images from the prior ``z ~ N(0, I)``, as probabilities ``(n, 1, 28, 28)``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n: the number of samples must be a non-negative integer, got {n!r}")
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu").to(device)
        return torch.sigmoid(self.decode(z, y))


class VAE(VariationalModel):
    """The seed's MLP VAE: 784 → 400 → (20 means, 20 log-variances); 20 → 400 → 784.

    The layer names are the seed's (``fc1``, ``fc21``, ``fc22``) and the
    canonical PyTorch example's (``fc3``, ``fc4``). The seed comments ``fc22`` as
    "variance"; it is really the **log**-variance: any real number is a valid
    log-variance, so the layer needs no positivity constraint, and
    ``exp(logvar)`` can never be negative.
    """

    name = "vae"

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400):
        super().__init__()
        _check_positive(latent_dim=latent_dim, hidden_dim=hidden_dim)
        self.latent_dim = latent_dim
        self.config = {"latent_dim": latent_dim, "hidden_dim": hidden_dim}
        self.fc1 = nn.Linear(NUM_PIXELS, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)  # mean mu
        self.fc22 = nn.Linear(hidden_dim, latent_dim)  # log-variance log sigma^2
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, NUM_PIXELS)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = torch.relu(self.fc1(x.flatten(1)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = torch.relu(self.fc3(z))
        return self.fc4(h).view(-1, *IMAGE_SHAPE)


class ConvVAE(VariationalModel):
    """A convolutional VAE for 28×28 images.

    Encoder: ``Conv(1→32, 4×4, stride 2)`` 28→14, ReLU, ``Conv(32→64, 4×4,
    stride 2)`` 14→7, ReLU, flatten (3136), ``Linear(3136→hidden)``, ReLU, then
    two ``Linear(hidden→latent)`` heads for ``mu`` and ``logvar``.
    Decoder: the mirror image, ``Linear(latent→hidden)``, ReLU,
    ``Linear(hidden→3136)``, ReLU, ``ConvTranspose(64→32)`` 7→14, ReLU,
    ``ConvTranspose(32→1)`` 14→28, giving logits.
    """

    name = "conv-vae"

    def __init__(self, latent_dim: int = 32, hidden_dim: int = 256, channels: int = 32):
        super().__init__()
        _check_positive(latent_dim=latent_dim, hidden_dim=hidden_dim, channels=channels)
        self.latent_dim = latent_dim
        self.config = {"latent_dim": latent_dim, "hidden_dim": hidden_dim, "channels": channels}
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * c * 7 * 7, hidden_dim), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, 2 * c * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (2 * c, 7, 7)),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),
        )

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)


class CVAE(VariationalModel):
    """A conditional VAE: the seed's MLP with the one-hot label appended to the
    encoder's input and to the latent code, so ``decode(z, y)`` draws digit ``y``
    in the "style" ``z``."""

    name = "cvae"
    conditional = True

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400, num_classes: int = NUM_CLASSES):
        super().__init__()
        _check_positive(latent_dim=latent_dim, hidden_dim=hidden_dim, num_classes=num_classes)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.config = {"latent_dim": latent_dim, "hidden_dim": hidden_dim, "num_classes": num_classes}
        self.fc1 = nn.Linear(NUM_PIXELS + num_classes, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim + num_classes, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, NUM_PIXELS)

    def _one_hot(self, y: Tensor | None, batch: int) -> Tensor:
        if y is None:
            raise ValueError("y: the CVAE needs the labels, shape (batch,) with values 0..9")
        if not isinstance(y, Tensor) or y.shape != (batch,):
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"y: expected integer labels of shape ({batch},), got {shape}")
        return F.one_hot(y.long(), self.num_classes).float()

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = torch.relu(self.fc1(torch.cat([x.flatten(1), self._one_hot(y, len(x))], dim=1)))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = torch.relu(self.fc3(torch.cat([z, self._one_hot(y, len(z))], dim=1)))
        return self.fc4(h).view(-1, *IMAGE_SHAPE)


class Autoencoder(nn.Module):
    """A plain (deterministic) autoencoder: 784 → 400 → latent → 400 → 784.

    ``encode(x)`` returns one point ``z`` per image, not a distribution, so
    there is no KL term and nothing tells us which ``z`` are "valid" —
    notebook 1 shows the holes this leaves in the latent space.
    """

    name = "ae"
    is_variational = False
    conditional = False

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400):
        super().__init__()
        _check_positive(latent_dim=latent_dim, hidden_dim=hidden_dim)
        self.latent_dim = latent_dim
        self.config = {"latent_dim": latent_dim, "hidden_dim": hidden_dim}
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(NUM_PIXELS, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, NUM_PIXELS),
            nn.Unflatten(1, IMAGE_SHAPE),
        )

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_images(x)
        z = self.encode(x)
        return self.decode(z), z


MODELS: dict[str, type[nn.Module]] = {"ae": Autoencoder, "vae": VAE, "conv-vae": ConvVAE, "cvae": CVAE}


def build_model(name: str, **config) -> nn.Module:
    """Build a model by its CLI name (``ae``, ``vae``, ``conv-vae``, ``cvae``)."""
    if name not in MODELS:
        raise ValueError(f"model: unknown name {name!r}; choose one of {sorted(MODELS)}")
    try:
        return MODELS[name](**config)
    except TypeError as err:
        raise ValueError(f"model {name!r}: bad constructor arguments {config}: {err}") from None


def conv2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Height (or width) of a ``Conv2d`` output, in pixels.

    ``floor((size + 2 * padding - kernel) / stride) + 1``: the kernel starts at
    the padded edge and moves ``stride`` pixels at a time while it still fits.
    ConvVAE's encoder: ``conv2d_output_size(28, 4, 2, 1) == 14`` and then 7.
    """
    _check_positive(size=size, kernel=kernel, stride=stride)
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding: must be a non-negative integer, got {padding!r}")
    if size + 2 * padding < kernel:
        raise ValueError(f"kernel {kernel} is larger than the padded input {size + 2 * padding}")
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                                 output_padding: int = 0) -> int:
    """Height (or width) of a ``ConvTranspose2d`` output, in pixels.

    ``(size - 1) * stride - 2 * padding + kernel + output_padding``, the inverse
    of :func:`conv2d_output_size` (ConvVAE's decoder: 7 → 14 → 28).
    """
    _check_positive(size=size, kernel=kernel, stride=stride)
    for name, value in (("padding", padding), ("output_padding", output_padding)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    return (size - 1) * stride - 2 * padding + kernel + output_padding
