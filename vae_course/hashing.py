"""Checksums of files, read in 1 MiB blocks (data archives, cache stamps, shipped weights)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file at ``path`` (``algorithm``: any name ``hashlib.new`` knows)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
