"""Shared set-up for the unit tests.

* The tests never touch the network or the user's cache: every session gets its
  own temporary ``VAE_COURSE_CACHE``, and network connections are refused.
* ``VAE_COURSE_DATA`` points at the offline MNIST copy (``../shared/data``
  beside the checkout) when it is not set already.
* Hypothesis has a ``ci`` profile (no deadline, derandomized: the same examples
  on every run) that is loaded when the ``CI`` environment variable is set.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from course_testing import ROOT, data_available, run_cli

# ---------------------------------------------------------------- environment
# Set before anything imports vae_course, so every cache_dir() call sees it.
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="vae_course_test_cache_"))
os.environ["VAE_COURSE_CACHE"] = str(_SESSION_CACHE)
if not os.environ.get("VAE_COURSE_DATA"):
    _shared = ROOT.parent / "shared" / "data"
    if (_shared / "MNIST" / "raw").is_dir():
        os.environ["VAE_COURSE_DATA"] = str(_shared)
os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


# ---------------------------------------------------------------- no network
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else None
    if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOCAL_HOSTS:
        raise OSError(f"network access to {host} is disabled in the unit tests")
    return _real_connect(sock, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL_HOSTS:
        raise OSError(f"network access to {host} is disabled in the unit tests")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Connections to anything but this machine fail at once (tests must work offline)."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


# ---------------------------------------------------------------- data
@pytest.fixture(scope="session")
def mnist_small():
    """2000 training and 500 test images of grayscale MNIST (loaded once per session)."""
    if not data_available("MNIST"):
        pytest.skip("MNIST files not found: set VAE_COURSE_DATA")
    from vae_course.data import load_data

    return load_data("mnist", limit_train=2000, limit_test=500)


@pytest.fixture
def tiny_data(mnist_small):
    """A very small split (512 train / 200 test images) for training-loop tests."""
    from vae_course.data import DataSplits

    d = mnist_small
    return DataSplits(d.name, d.binarize, d.seed, d.train_x[:512], d.train_y[:512],
                      d.val_x[:0], d.val_y[:0], d.test_x[:200], d.test_y[:200])


@pytest.fixture(scope="module")
def model_and_x():
    """An untrained 3-d VAE (hidden 32) and 12 binary images (one per test module)."""
    import torch

    from vae_course.models import VAE

    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((12, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(1))
    return VAE(latent_dim=3, hidden_dim=32), x


@pytest.fixture(scope="session")
def cli_two_epochs(tmp_path_factory):
    """One CLI run of 2 epochs on 2000 images (shared by the CLI and resume tests)."""
    if not data_available("MNIST"):
        pytest.skip("MNIST files not found: set VAE_COURSE_DATA")
    out = tmp_path_factory.mktemp("cli2") / "run"
    proc = run_cli("train", "--epochs", "2", "--limit-train", "2000", "--limit-test", "500",
                   "--out", str(out), "--no-progress")
    return proc, out
