"""Checksums: of files, read in 1 MiB blocks (data archives, cache stamps, shipped
weights), and of a checkpoint's contents (tensors and plain values)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

_TENSOR_PIECE = 1 << 24  # elements hashed at a time: bounded memory for any tensor


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file at ``path`` (``algorithm``: any name ``hashlib.new`` knows)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_checksum(obj: Any, h: "hashlib._Hash | None" = None) -> str:
    """A SHA-256 of everything in a (nested) checkpoint dict: tensor bytes, shapes, dtypes,
    and the plain values, so a flipped bit on disk is caught at load time instead of
    silently giving wrong weights. Dict keys are visited in sorted order.

    It detects *damage*, not *tampering*: it has no key, so anyone who edits a file can
    recompute it (the hostile-checkpoint tests do). That is why every field is also
    validated. A 1-D tensor is hashed in pieces of 2**24 elements, so even a zero-stride
    (expanded) tensor is never copied whole.
    """
    top = h is None
    h = hashlib.sha256() if top else h
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        flat = t if t.dim() == 1 else t.contiguous().reshape(-1)
        for i in range(0, flat.numel(), _TENSOR_PIECE):
            h.update(flat[i : i + _TENSOR_PIECE].contiguous().view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"D")
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            state_checksum(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(b"L" if isinstance(obj, list) else b"U")
        for item in obj:
            state_checksum(item, h)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())
    return h.hexdigest() if top else ""
