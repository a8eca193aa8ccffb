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

import errno
import json
import os
import re
import shutil
import socket
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import Tensor
from torchvision import datasets, transforms
from torchvision.datasets.utils import check_integrity

from .errors import OneLineError
from .hashing import file_digest
from .run_folder import atomic_write_text, is_package_temp, temp_file
from .settings import CacheDirError, cache_dir, data_source_dir

# Names a learner types -> torchvision classes (whose ``resources`` carry the MD5s).
DATASETS = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}
BINARIZE_MODES = ("none", "dynamic", "static")
# The test (and validation) set is binarized with this seed in every run, so two
# models evaluated on "binarized MNIST" are evaluated on the *same* binary images.
EVAL_BINARIZE_SEED = 0
IMAGE_SHAPE = (1, 28, 28)
# A full disk, a quota, a file-size limit: the cache folder cannot hold the data.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DataNotFoundError(OneLineError, FileNotFoundError):
    """The dataset files are missing, corrupted, or cannot be downloaded.

    In a terminal its message is one line: what went wrong and how to fix it with
    ``VAE_COURSE_DATA``. In a notebook it shows as two lines without a traceback,
    the second saying how to fix it from the running kernel (``%env``).
    """

    problem: str = ""  # what went wrong, without the fix (the notebook's first line)
    dataset: str = "mnist"

    def notebook_lines(self) -> list[str]:
        folder = DATASETS.get(self.dataset, datasets.MNIST).__name__
        return [f"{type(self).__name__}: {self.problem or ' '.join(str(self).split())}",
                f"Fix it here: put the original *-ubyte.gz files in /path/to/folder/{folder}/raw/, run "
                f"%env VAE_COURSE_DATA=/path/to/folder (or os.environ[\"VAE_COURSE_DATA\"] = \"/path/to/folder\") "
                f"and run this cell again."]


def _data_error(name: str, problem: str) -> DataNotFoundError:
    """A :class:`DataNotFoundError`: ``problem`` plus the terminal's fix, on one line."""
    folder = DATASETS[name].__name__
    err = DataNotFoundError(f"{problem}. To use {name} offline, put the original *-ubyte.gz files in "
                            f"<folder>/{folder}/raw/ and set VAE_COURSE_DATA=<folder>.")
    err.problem, err.dataset = problem, name
    return err


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown name {name!r}; choose one of {sorted(DATASETS)}")


def _no_room(name: str, needed: int | None = None) -> CacheDirError:
    """The one message for a cache folder that cannot hold the data: it names the cache
    (never the read-only source) and the two fixes."""
    root = cache_dir()
    free = shutil.disk_usage(root).free
    need = f"{name} needs {needed / 2**20:.0f} MiB there, " if needed else ""
    return CacheDirError(f"the cache folder {root} has no room for {name} ({need}{free / 2**20:.0f} MiB free); "
                         f"free some space there, or set VAE_COURSE_CACHE to a folder on a disk with room")


def _gzip_size(path: Path) -> int:
    """The uncompressed size of a one-member gzip file (its last 4 bytes, ISIZE), in bytes."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


def _copy_into_cache(src: Path, target: Path) -> None:
    """Copy ``src`` to ``target`` through a package-named temporary file, renamed when
    complete; on any failure the temporary file is removed (nothing half-copied stays)."""
    fd, tmp = temp_file(target.parent, target.name)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_verified(name: str, raw_dir: Path) -> None:
    """Copy the ``*-ubyte.gz`` files from ``VAE_COURSE_DATA`` into the cache.

    The source may be read-only, so torchvision (which extracts next to the
    archives) works on the writable copy. Every file is checked against the MD5
    that torchvision itself ships in ``resources``. Before anything is copied, the
    cache must have room for the archives and what they extract to; else one
    line names the cache folder (:func:`_no_room`).
    """
    source = data_source_dir()
    if source is None:
        return
    src_raw = source / DATASETS[name].__name__ / "raw"
    problems, to_copy = [], []
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
            to_copy.append((src, target))
    if problems:
        shown = "; ".join(problems[:2]) + (f"; and {len(problems) - 2} more" if len(problems) > 2 else "")
        raise _data_error(name, f"VAE_COURSE_DATA={source} does not hold a usable copy of {name}: {shown}")
    if not to_copy:
        return
    raw_dir.mkdir(parents=True, exist_ok=True)
    needed = sum(src.stat().st_size + _gzip_size(src) for src, _ in to_copy)
    if shutil.disk_usage(raw_dir).free < needed:
        raise _no_room(name, needed)
    for src, target in to_copy:
        try:
            _copy_into_cache(src, target)
        except OSError as err:
            if err.errno in _NO_ROOM:
                raise _no_room(name, needed) from None
            raise


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
# The header of an extracted IDX file: its magic number (0x0803 images, 0x0801 labels) and
# how many sizes follow; torchvision asserts these instead of reporting them.
_IDX_KIND = {"-images-idx3-ubyte": (2051, 3), "-labels-idx1-ubyte": (2049, 1)}
_OLD_COPY_TEMP = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile's names, used for copies before the package prefix


def _one_line(err: BaseException) -> str:
    """An exception's whole message on one line: torchvision puts the cause of a failed
    download ("Tried <mirror>, got: <urlopen error ...>") on the lines after the first."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _download_failure(err: BaseException) -> str:
    """Why a download failed, short: "the download of <file> failed (<host>: <reason>; ...)",
    one ``host: reason`` for each mirror torchvision tried."""
    text = _one_line(err)
    tried = re.findall(r"Tried (\S+), got: (?:<urlopen error )?(?:\[Errno -?\d+\] )?(.*?)>?(?= Tried |$)", text)
    if not tried:
        return f"the download failed ({text})"
    file = re.search(r"Error downloading (\S+?):", text)
    reasons = "; ".join(f"{urlparse(url).netloc or url}: {why.strip()}" for url, why in tried)
    return f"the download of {file.group(1) if file else 'its files'} failed ({reasons})"


def _md5(path: Path) -> str:
    return file_digest(path, "md5")


def _extracted_files(name: str, raw_dir: Path) -> list[Path]:
    """The uncompressed files torchvision reads (``train-images-idx3-ubyte``, ...)."""
    return [raw_dir / Path(filename).stem for filename, _ in DATASETS[name].resources]


def _read_stamp(raw_dir: Path) -> dict[str, dict]:
    """The stamp's well-formed entries: ``{file name: {"size": int, "md5": str}}``.

    Anything else (invalid JSON, ``[]``, a number, an entry of the wrong shape) is
    treated as no record for that file, so the file is extracted again: a damaged
    cache record is rebuilt, never fatal.
    """
    try:
        stamp = json.loads((raw_dir / STAMP).read_text())
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return {}
    if not isinstance(stamp, dict):
        return {}
    good = {}
    for key, entry in stamp.items():
        if (isinstance(entry, dict) and type(entry.get("size")) is int and entry["size"] >= 0
                and isinstance(entry.get("md5"), str) and re.fullmatch(r"[0-9a-f]{32}", entry["md5"])):
            good[key] = entry
    return good


def _idx_is_sound(path: Path) -> bool:
    """True when ``path`` has the IDX header torchvision expects and exactly the bytes it announces."""
    kind = next((k for k in _IDX_KIND if path.name.endswith(k)), None)
    if kind is None:
        return True
    magic, dims = _IDX_KIND[kind]
    try:
        with open(path, "rb") as f:
            header = f.read(4 * (dims + 1))
        size = path.stat().st_size
    except OSError:
        return False
    if len(header) < 4 * (dims + 1):
        return False
    values = struct.unpack(f">{dims + 1}I", header)
    count = 1
    for v in values[1:]:
        count *= v
    return values[0] == magic and size == len(header) + count


def _distrust_damaged_extracts(name: str, raw_dir: Path) -> None:
    """Delete extracted files that do not match the stamp written when they were extracted
    (or that have no stamp, or a damaged one), so torchvision extracts them again from the
    verified archives. Also delete a damaged stamp, and temporary files a killed copy left.

    torchvision trusts any extracted file that exists; a flipped byte in one would
    silently change the data, and a wrong header ends in an ``AssertionError``.
    Archives are checked separately (MD5, ``_copy_verified``).
    """
    if not raw_dir.is_dir():
        return
    for leftover in raw_dir.iterdir():  # the package's own temporary files (and those of 0.x: "tmpXXXXXXXX")
        if (is_package_temp(leftover.name) or _OLD_COPY_TEMP.fullmatch(leftover.name)) \
                and not leftover.is_symlink() and leftover.is_file():
            leftover.unlink(missing_ok=True)
    stamp = _read_stamp(raw_dir)
    stale_stamp = (raw_dir / STAMP).exists() and not stamp
    for path in _extracted_files(name, raw_dir):
        if not path.exists():
            continue
        want = stamp.get(path.name)
        if (want is None or path.stat().st_size != want["size"] or not _idx_is_sound(path)
                or _md5(path) != want["md5"]):
            path.unlink()
            stale_stamp = True
    if stale_stamp:
        (raw_dir / STAMP).unlink(missing_ok=True)


def _stamp_extracts(name: str, raw_dir: Path) -> None:
    """Record the size and MD5 of freshly extracted files (made from MD5-checked archives).

    Skipped when a good stamp covers them all; a stamp that cannot be written (a
    full disk) only means the files are checked and extracted again next time."""
    files = _extracted_files(name, raw_dir)
    stamp = _read_stamp(raw_dir)
    if all(p.name in stamp and p.stat().st_size == stamp[p.name]["size"] for p in files):
        return
    record = {p.name: {"size": p.stat().st_size, "md5": _md5(p)} for p in files}
    try:
        atomic_write_text(raw_dir / STAMP, json.dumps(record, indent=1))
    except OSError:
        pass


def _open_dataset(name: str, root: Path, train: bool, transform):
    with _network_timeout(10):
        return DATASETS[name](str(root), train=train, download=True, transform=transform)


def _clean_after_failure(name: str, raw_dir: Path) -> None:
    """Remove what a failed extraction or download left half-written in the cache:
    extracted files that are not stamped, and archives that fail their MD5."""
    _distrust_damaged_extracts(name, raw_dir)
    for filename, md5 in DATASETS[name].resources:
        archive = raw_dir / filename
        if archive.is_file() and not check_integrity(str(archive), md5):
            archive.unlink(missing_ok=True)


def torchvision_dataset(name: str = "mnist", train: bool = True, transform=None):
    """The torchvision dataset object, read from the cache (filled from
    ``VAE_COURSE_DATA`` or, when online, downloaded by torchvision).

    Every file in the cache is verified before it is trusted: the archives
    against torchvision's MD5s, the extracted files against the stamp written
    when they were extracted and their IDX header; a damaged one is replaced from
    its source. A file that still cannot be read is extracted once more from the
    verified archive; if that fails too, one line says which.
    """
    _check_name(name)
    root = cache_dir() / "data"
    raw_dir = root / DATASETS[name].__name__ / "raw"
    _copy_verified(name, raw_dir)
    _distrust_damaged_extracts(name, raw_dir)
    for attempt in (1, 2):
        try:
            dataset = _open_dataset(name, root, train, transform)
            break
        except OSError as err:  # a full cache while extracting or downloading, or a failed download
            _clean_after_failure(name, raw_dir)
            if err.errno in _NO_ROOM:
                raise _no_room(name) from None
            if isinstance(err, URLError) or not err.filename:  # a network failure names no file
                raise _data_error(name, f"Could not find or download {name}: {_download_failure(err)}") from None
            raise CacheDirError(f"cannot prepare {name} in the cache folder {cache_dir()} ({_one_line(err)}); "
                                f"set VAE_COURSE_CACHE to a writable folder") from None
        except RuntimeError as err:  # torchvision: every mirror failed
            _clean_after_failure(name, raw_dir)
            raise _data_error(name, f"Could not find or download {name}: {_download_failure(err)}") from None
        except (AssertionError, ValueError, TypeError, IndexError, KeyError, struct.error) as err:
            # An extracted file that passed the checks but not torchvision's reader: remove the
            # extracted files and their stamp, so the next attempt extracts them again.
            for path in _extracted_files(name, raw_dir):
                path.unlink(missing_ok=True)
            (raw_dir / STAMP).unlink(missing_ok=True)
            if attempt == 2:
                raise _data_error(name, f"the cached copy of {name} in {raw_dir} cannot be read even after "
                                        f"extracting it again from its verified archives "
                                        f"({type(err).__name__}: {_one_line(err)}); delete {raw_dir}") from None
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
