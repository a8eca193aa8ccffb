"""Data loading: pixel modes, splits, the two batching paths, MD5 checks and the
offline error."""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from course_testing import needs_fashion, needs_mnist
from vae_course import data as vdata
from vae_course.data import DataNotFoundError, load_data

pytestmark = needs_mnist


def _is_binary(t: torch.Tensor) -> bool:
    return bool(((t == 0) | (t == 1)).all())


def test_grayscale_mode_matches_to_tensor(mnist_small):
    d = mnist_small
    assert d.train_x.shape == (2000, 1, 28, 28) and d.train_x.dtype == torch.float32
    assert d.train_y.shape == (2000,) and d.train_y.dtype == torch.int64
    assert d.test_x.shape == (500, 1, 28, 28) and len(d.val_x) == 0
    assert 0 <= d.train_x.min() and d.train_x.max() <= 1 and not _is_binary(d.train_x)
    # the canonical example's first training label
    assert d.train_y[:5].tolist() == [5, 0, 4, 1, 9]


def test_dataloader_path_equals_tensor_path(mnist_small):
    """The usual DataLoader + ToTensor recipe gives exactly the same tensors."""
    loader = vdata.make_dataloader("mnist", train=True, batch_size=250, shuffle=False)
    for i, (x, y) in enumerate(loader):
        assert torch.equal(x, mnist_small.train_x[i * 250 : (i + 1) * 250])
        assert torch.equal(y, mnist_small.train_y[i * 250 : (i + 1) * 250])
        if i == 3:
            break
    x, y = next(iter(vdata.make_dataloader("mnist", train=False, batch_size=100)))
    assert torch.equal(x, mnist_small.test_x[:100]) and torch.equal(y, mnist_small.test_y[:100])


def test_static_binarization_is_fixed_by_the_seed():
    a = load_data("mnist", binarize="static", limit_train=300, limit_test=100, seed=3)
    b = load_data("mnist", binarize="static", limit_train=300, limit_test=100, seed=3)
    c = load_data("mnist", binarize="static", limit_train=300, limit_test=100, seed=4)
    assert _is_binary(a.train_x) and _is_binary(a.test_x)
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    # evaluation images do not depend on the training seed: comparable runs
    assert torch.equal(a.test_x, c.test_x)


def test_dynamic_binarization_resamples_training_images_each_pass(mnist_small):
    d = load_data("mnist", binarize="dynamic", limit_train=300, limit_test=100, val_size=50)
    assert d.dynamic and not _is_binary(d.train_x) and _is_binary(d.test_x) and _is_binary(d.val_x)
    static = load_data("mnist", binarize="static", limit_train=300, limit_test=100)
    assert torch.equal(d.test_x, static.test_x)  # the same fixed-seed test binarization
    noise = torch.Generator().manual_seed(0)
    passes = [torch.cat([x for x, _ in vdata.tensor_batches(
        d.train_x, d.train_y, 64, shuffle=False, dynamic_binarize=True, noise_generator=noise)])
        for _ in range(2)]
    assert all(_is_binary(p) for p in passes) and not torch.equal(passes[0], passes[1])
    # each pixel is on with probability equal to its intensity (over the 300 images, within 5 s.e.)
    p = d.train_x
    diff = (passes[0] - p).sum().item()
    assert abs(diff) < 5 * (p * (1 - p)).sum().sqrt().item()


def test_validation_split_and_limits():
    full = load_data("mnist", limit_test=10)
    d = load_data("mnist", val_size=1000, limit_train=500, limit_test=10)
    assert len(d.train_x) == 500 and len(d.val_x) == 1000 and len(d.test_x) == 10
    assert torch.equal(d.val_x, full.train_x[-1000:])  # the last images are held out
    assert torch.equal(d.train_x, full.train_x[:500])
    assert len(full.train_x) == 60000 and len(full.val_x) == 0


def test_tensor_batches_cover_every_image_once():
    x = torch.arange(10.0).view(10, 1, 1, 1)
    y = torch.arange(10)
    g = torch.Generator().manual_seed(0)
    batches = list(vdata.tensor_batches(x, y, 4, generator=g))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all(torch.equal(bx.view(-1), by.float()) for bx, by in batches)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(seen, torch.cat([b[1] for b in vdata.tensor_batches(x, y, 4, generator=g2)]))
    with pytest.raises(ValueError, match="batch_size"):
        list(vdata.tensor_batches(x, y, 0))


def test_data_splits_to_and_binarize_images(mnist_small):
    moved = mnist_small.to("cpu")
    assert torch.equal(moved.train_x, mnist_small.train_x) and moved.name == "mnist"
    b = vdata.binarize_images(mnist_small.test_x[:20], seed=1)
    assert _is_binary(b) and torch.equal(b, vdata.binarize_images(mnist_small.test_x[:20], seed=1))


def test_pixel_range_check():
    vdata.check_pixel_range(torch.rand(3, 1, 28, 28))
    with pytest.raises(ValueError, match=r"my images.*\[0, 1\].*255"):
        vdata.check_pixel_range(torch.rand(3, 1, 28, 28) * 255, "my images")
    with pytest.raises(ValueError, match="train images"):
        vdata.check_pixel_range(-torch.rand(2, 1, 28, 28), "train images")


@needs_fashion
def test_fashion_mnist_loads():
    d = load_data("fashion-mnist", limit_train=100, limit_test=100)
    assert d.train_x.shape == (100, 1, 28, 28) and d.train_y.max() <= 9
    assert not torch.equal(d.train_x, load_data("mnist", limit_train=100, limit_test=1).train_x)


@pytest.mark.parametrize("kwargs, arg", [
    ({"name": "cifar"}, "dataset"), ({"binarize": "yes"}, "binarize"), ({"val_size": -1}, "val_size"),
    ({"limit_train": -5}, "limit_train"), ({"limit_test": 2.5}, "limit_test"), ({"val_size": 60000}, "val_size"),
])
def test_bad_arguments_are_named(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        load_data(**kwargs)


# ------------------------------------------------------------------ offline copies and their errors
def _source_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(Path(os.environ["VAE_COURSE_DATA"]) / "MNIST", src / "MNIST")
    return src


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_copies_from_a_read_only_source_and_never_writes_there(tmp_path, monkeypatch):
    src = _source_copy(tmp_path)
    for p in sorted(src.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    src.chmod(0o555)
    before = _snapshot(src)
    monkeypatch.setenv("VAE_COURSE_DATA", str(src))
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    try:
        d = load_data("mnist", limit_train=10, limit_test=10)
    finally:
        for p in [src, *src.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert d.train_x.shape == (10, 1, 28, 28)
    assert _snapshot(src) == before
    assert (tmp_path / "cache" / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


def test_a_corrupted_source_file_is_named(tmp_path, monkeypatch):
    src = _source_copy(tmp_path)
    bad = src / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"not the real labels"))
    monkeypatch.setenv("VAE_COURSE_DATA", str(src))
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match=r"corrupted .*t10k-labels-idx1-ubyte.gz.*MD5") as info:
        load_data("mnist")
    assert "VAE_COURSE_DATA" in str(info.value)


def test_a_missing_source_file_is_named(tmp_path, monkeypatch):
    src = _source_copy(tmp_path)
    (src / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("VAE_COURSE_DATA", str(src))
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match=r"missing .*train-labels-idx1-ubyte.gz"):
        load_data("mnist")


def test_a_corrupted_cached_file_is_replaced_from_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    load_data("mnist", limit_train=10, limit_test=10)
    cached = tmp_path / "cache" / "data" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    cached.write_bytes(b"garbage")
    load_data("mnist", limit_train=10, limit_test=10)  # re-copied after the MD5 check fails
    assert cached.stat().st_size > 1000


@pytest.mark.parametrize("source", ["", "empty-folder", "no-such-folder"])
def test_no_data_and_no_network_is_a_clear_error_within_seconds(tmp_path, monkeypatch, source):
    folder = {"": "", "empty-folder": str(tmp_path / "empty"), "no-such-folder": str(tmp_path / "nope")}[source]
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("VAE_COURSE_DATA", folder)
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    # Downloads run under a 10 s socket timeout (data._network_timeout), so this cannot hang;
    # no wall-clock time is asserted (tests check behaviour, benchmarks measure).
    with pytest.raises(DataNotFoundError, match="VAE_COURSE_DATA") as info:
        load_data("mnist")
    assert "MNIST/raw" in str(info.value)
    assert "Traceback" not in str(info.value)
    message = str(info.value)
    assert "\n" not in message, message
    if source == "":  # a download was tried: torchvision's reason (on the lines after its
        # "Error downloading ...:") is kept, on the one line
        assert "got:" in message and "network access" in message, message


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_an_extracted_file_is_detected_and_repaired(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    first = load_data("mnist", limit_train=20, limit_test=10)
    raw = tmp_path / "cache" / "data" / "MNIST" / "raw"
    assert (raw / vdata.STAMP).is_file(), "extracted files must be stamped with their checksums"
    _flip_byte(raw / "train-labels-idx1-ubyte", 8)  # the first label: 5 -> 4
    _flip_byte(raw / "train-images-idx3-ubyte", 16 + 28 * 14 + 14)  # a pixel of the first image
    again = load_data("mnist", limit_train=20, limit_test=10)
    assert torch.equal(again.train_y, first.train_y) and again.train_y[0] == 5
    assert torch.equal(again.train_x, first.train_x)


def test_a_damaged_cache_without_a_source_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    load_data("mnist", limit_train=10, limit_test=10)
    raw = tmp_path / "cache" / "data" / "MNIST" / "raw"
    _flip_byte(raw / "t10k-labels-idx1-ubyte", 8)
    _flip_byte(raw / "t10k-labels-idx1-ubyte.gz", 100)
    monkeypatch.setenv("VAE_COURSE_DATA", "")
    with pytest.raises(DataNotFoundError, match="VAE_COURSE_DATA") as info:
        load_data("mnist", limit_train=10, limit_test=10)
    assert "t10k-labels-idx1-ubyte" in str(info.value), "the message names the file it could not get"
    assert not (raw / "t10k-labels-idx1-ubyte").exists(), "the damaged file must not stay trusted"
