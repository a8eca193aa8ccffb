"""MNIST and Fashion-MNIST as tensors, ready for a VAE.

Two ways to feed a model are offered, because the course compares them:

* :func:`tensor_batches` keeps the *whole* dataset as one tensor on the training
  device and cuts batches by indexing a random permutation. No per-image Python
  work happens, which is why it is many times faster than the usual recipe.
* :func:`make_dataloader` is the usual recipe: a torchvision dataset whose
  ``ToTensor()`` transform runs once per image, inside a ``DataLoader``.

Pixels can be used three ways (``binarize=``):

* ``"none"``    grayscale intensities in [0, 1] (the canonical PyTorch example);
* ``"dynamic"`` a fresh Bernoulli sample of every training image each epoch, as
  in the papers (the test set is binarized *once*, with a fixed seed, so that
  evaluations of different models are comparable);
* ``"static"``  one Bernoulli sample of everything, drawn with a recorded seed.
"""
from __future__ import annotations

import json
import shutil
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.error import URLError

import torch
from torch import Tensor
from torchvision import datasets, transforms
from torchvision.datasets.utils import check_integrity

from .hashing import file_digest
from .settings import cache_dir, data_source_dir

# Names a learner types -> torchvision classes (whose ``resources`` carry the MD5s).
DATASETS = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}
BINARIZE_MODES = ("none", "dynamic", "static")
# The test (and validation) set is binarized with this seed in every run, so two
# models evaluated on "binarized MNIST" are evaluated on the *same* binary images.
EVAL_BINARIZE_SEED = 0
IMAGE_SHAPE = (1, 28, 28)


class DataNotFoundError(FileNotFoundError):
    """The dataset files are missing, corrupted, or cannot be downloaded."""


def _how_to_provide(name: str) -> str:
    folder = DATASETS[name].__name__
    return (
        f"To use {name} offline, put the original *-ubyte.gz files in "
        f"<folder>/{folder}/raw/ and set VAE_COURSE_DATA=<folder> "
        f"(for example: export VAE_COURSE_DATA=../shared/data)."
    )


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown name {name!r}; choose one of {sorted(DATASETS)}")


def _copy_verified(name: str, raw_dir: Path) -> None:
    """Copy the ``*-ubyte.gz`` files from ``VAE_COURSE_DATA`` into the cache.

    The source may be read-only, so torchvision (which extracts next to the
    archives) works on the writable copy. Every file is checked against the MD5
    that torchvision itself ships in ``resources``.
    """
    source = data_source_dir()
    if source is None:
        return
    src_raw = source / DATASETS[name].__name__ / "raw"
    problems = []
    for filename, md5 in DATASETS[name].resources:
        target = raw_dir / filename
        if check_integrity(str(target), md5):
            continue
        src = src_raw / filename
        if not src.is_file():
            problems.append(f"missing {src}")
        elif not check_integrity(str(src), md5):
            problems.append(f"corrupted {src} (its MD5 is not torchvision's {md5})")
        else:
            raw_dir.mkdir(parents=True, exist_ok=True)
            # Copy then rename, so an interrupted copy never looks complete.
            with tempfile.NamedTemporaryFile(dir=raw_dir, delete=False) as tmp:
                shutil.copyfile(src, tmp.name)
            Path(tmp.name).replace(target)
    if problems:
        raise DataNotFoundError(
            f"VAE_COURSE_DATA={source} does not hold a usable copy of {name}: "
            + "; ".join(problems) + ". " + _how_to_provide(name)
        )


@contextmanager
def _network_timeout(seconds: float):
    """Make a download attempt fail within seconds instead of hanging."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


STAMP = ".extracted.json"  # sizes and MD5s of the extracted files, written right after extraction


def _one_line(err: BaseException) -> str:
    """An exception's whole message on one line: torchvision puts the cause of a failed
    download ("Tried <mirror>, got: <urlopen error ...>") on the lines after the first."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _md5(path: Path) -> str:
    return file_digest(path, "md5")


def _extracted_files(name: str, raw_dir: Path) -> list[Path]:
    """The uncompressed files torchvision reads (``train-images-idx3-ubyte``, ...)."""
    return [raw_dir / Path(filename).stem for filename, _ in DATASETS[name].resources]


def _distrust_damaged_extracts(name: str, raw_dir: Path) -> None:
    """Delete extracted files that do not match the stamp written when they were extracted
    (or that have no stamp), so torchvision extracts them again from the verified archives.

    torchvision trusts any extracted file that exists; a flipped byte in one would
    silently change the data. Archives are checked separately (MD5, ``_copy_verified``).
    """
    stamp_path = raw_dir / STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = {}
    for path in _extracted_files(name, raw_dir):
        if not path.exists():
            continue
        want = stamp.get(path.name)
        if want is None or path.stat().st_size != want["size"] or _md5(path) != want["md5"]:
            path.unlink()
            stamp_path.unlink(missing_ok=True)


def _stamp_extracts(name: str, raw_dir: Path) -> None:
    """Record the size and MD5 of freshly extracted files (made from MD5-checked archives)."""
    stamp_path = raw_dir / STAMP
    if stamp_path.is_file():
        return
    stamp = {p.name: {"size": p.stat().st_size, "md5": _md5(p)} for p in _extracted_files(name, raw_dir)}
    tmp = raw_dir / f"{STAMP}.tmp"
    tmp.write_text(json.dumps(stamp, indent=1))
    tmp.replace(stamp_path)


def torchvision_dataset(name: str = "mnist", train: bool = True, transform=None):
    """The torchvision dataset object, read from the cache (filled from
    ``VAE_COURSE_DATA`` or, when online, downloaded by torchvision).

    Every file in the cache is verified before it is trusted: the archives
    against torchvision's MD5s, the extracted files against the stamp written
    when they were extracted; a damaged one is replaced from its source.
    """
    _check_name(name)
    root = cache_dir() / "data"
    raw_dir = root / DATASETS[name].__name__ / "raw"
    _copy_verified(name, raw_dir)
    _distrust_damaged_extracts(name, raw_dir)
    try:
        with _network_timeout(10):
            dataset = DATASETS[name](str(root), train=train, download=True, transform=transform)
    except (RuntimeError, URLError, OSError) as err:
        raise DataNotFoundError(
            f"Could not find or download {name} ({_one_line(err)}). " + _how_to_provide(name)
        ) from None
    _stamp_extracts(name, raw_dir)
    return dataset


def load_images(name: str = "mnist", train: bool = True) -> tuple[Tensor, Tensor]:
    """All images of one split as ``(images, labels)``.

    Returns:
        images: float32 ``(n, 1, 28, 28)`` in [0, 1] — the same values
            ``transforms.ToTensor()`` gives, computed in one vectorised step.
        labels: int64 ``(n,)``.
    """
    ds = torchvision_dataset(name, train=train)
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return images, ds.targets.clone().to(torch.int64)


def binarize_images(images: Tensor, seed: int) -> Tensor:
    """One Bernoulli sample per pixel: pixel ``p`` becomes 1 with probability ``p``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.bernoulli(images.cpu(), generator=gen).to(images.device)


def check_pixel_range(images: Tensor, name: str = "images") -> None:
    """Raise ``ValueError`` unless every value lies in [0, 1] (a Bernoulli
    likelihood is only defined there). Called once at load time, never per step."""
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{name}: pixel values must lie in [0, 1] for a Bernoulli likelihood, "
            f"found [{images.min().item():.3g}, {images.max().item():.3g}]; divide by 255?"
        )


@dataclass
class DataSplits:
    """The train / validation / test tensors of one dataset.

    Images are ``(n, 1, 28, 28)`` float32; labels ``(n,)`` int64. With
    ``binarize="dynamic"`` the *training* images stay grayscale (they are
    resampled every epoch by :func:`tensor_batches`) while validation and test
    are already binary.
    """

    name: str
    binarize: str
    seed: int
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor

    def to(self, device: torch.device | str) -> "DataSplits":
        """Move every tensor to ``device`` (done once, not per batch)."""
        moved = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, Tensor)}
        return DataSplits(name=self.name, binarize=self.binarize, seed=self.seed, **moved)

    @property
    def dynamic(self) -> bool:
        return self.binarize == "dynamic"


def load_data(
    name: str = "mnist",
    binarize: str = "none",
    val_size: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> DataSplits:
    """Load a dataset as :class:`DataSplits`, on ``device``.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        binarize: ``"none"``, ``"dynamic"`` or ``"static"`` (see the module doc).
        val_size: how many of the *last* training images to hold out for
            validation (0: no validation set). The split never depends on ``seed``.
        limit_train: keep only the first ``limit_train`` training images (after
            the validation split), for quick runs.
        limit_test: keep only the first ``limit_test`` test images.
        seed: the seed of the static binarization.
    """
    _check_name(name)
    if binarize not in BINARIZE_MODES:
        raise ValueError(f"binarize: unknown mode {binarize!r}; choose one of {BINARIZE_MODES}")
    for arg, value in (("val_size", val_size), ("limit_train", limit_train), ("limit_test", limit_test)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{arg}: must be a non-negative integer, got {value!r}")
    train_x, train_y = load_images(name, train=True)
    test_x, test_y = load_images(name, train=False)
    if val_size >= len(train_x):
        raise ValueError(f"val_size: {val_size} leaves no training images (there are {len(train_x)})")
    n_train = len(train_x) - val_size
    val_x, val_y = train_x[n_train:], train_y[n_train:]
    train_x, train_y = train_x[:n_train], train_y[:n_train]
    if limit_train:
        train_x, train_y = train_x[:limit_train], train_y[:limit_train]
    if limit_test:
        test_x, test_y = test_x[:limit_test], test_y[:limit_test]
    check_pixel_range(train_x, "train images")
    if binarize != "none":
        # Evaluation images are binarized once with a fixed seed (comparable runs).
        test_x = binarize_images(test_x, EVAL_BINARIZE_SEED)
        val_x = binarize_images(val_x, EVAL_BINARIZE_SEED + 1)
    if binarize == "static":
        train_x = binarize_images(train_x, seed)
    splits = DataSplits(name, binarize, seed, train_x, train_y, val_x, val_y, test_x, test_y)
    return splits.to(device)


def tensor_batches(
    images: Tensor,
    labels: Tensor,
    batch_size: int,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    dynamic_binarize: bool = False,
    noise_generator: torch.Generator | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, y)`` batches cut from tensors that already live on the device.

    The permutation is drawn on the CPU from ``generator`` (so a checkpoint can
    store its state and resume exactly), then moved to the data's device once.
    With ``dynamic_binarize`` every batch is a fresh Bernoulli sample, drawn on
    the data's device from ``noise_generator``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size: must be positive, got {batch_size}")
    n = images.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(images.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = images[idx]
        if dynamic_binarize:
            x = torch.bernoulli(x, generator=noise_generator)
        yield x, labels[idx]


def make_dataloader(
    name: str = "mnist", train: bool = True, batch_size: int = 128, shuffle: bool | None = None
) -> torch.utils.data.DataLoader:
    """The usual recipe: a torchvision dataset with ``ToTensor()`` run per image.

    Kept for comparison (see ``python -m vae_course bench``) and for readers who
    know this pattern; the trainer itself uses :func:`tensor_batches`.
    """
    ds = torchvision_dataset(name, train=train, transform=transforms.ToTensor())
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=train if shuffle is None else shuffle
    )
