"""Hostile files written byte by byte, for the tests of issue 23 (classes 1 and 2).

A torch checkpoint is a zip archive whose ``data.pkl`` is a pickle. These helpers
take what ``torch.save`` writes for a real state, splice hand-written pickle
instructions into it (a memo-reference DAG, a million references to one
record, millions of empty dicts, a cycle, a container filled after it was
shared) and write the archive themselves, so that they can also leave a
gigabyte-sized hole (a sparse file), spoof the record count, or deflate a
record.
"""
from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

MEMO = 1 << 30  # memo indices far above any torch.save uses, so spliced objects never collide


# ---------------------------------------------------------------- pickle instructions
def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", MEMO + i)  # LONG_BINPUT


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", MEMO + i)  # LONG_BINGET


def plain(value) -> bytes:
    """Pickle instructions (protocol 2, no memo) for a dict/list/str/float/int."""
    if isinstance(value, dict):
        return b"}" + (b"(" + b"".join(plain(k) + plain(v) for k, v in value.items()) + b"u" if value else b"")
    if isinstance(value, list):
        return b"]" + (b"(" + b"".join(plain(v) for v in value) + b"e" if value else b"")
    if isinstance(value, str):
        data = value.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, int) and -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def dag(levels: int) -> bytes:
    """A list of two references to a list of two references to ... (``2**levels`` paths),
    written as ``pickle`` writes ``x = []; x = [x, x]`` repeated: every level's list is
    defined inside the next one's, then referenced once more through the memo."""
    ops = b"]" + put(0)
    for i in range(1, levels + 1):
        ops = b"]" + put(i) + b"(" + ops + get(i - 1) + b"e"
    return ops


def references(record: dict, n: int) -> bytes:
    """A list of ``n`` references to one ``record``."""
    return b"](" + plain(record) + put(0) + get(0) * (n - 1) + b"e"


def empty_dicts(n: int) -> bytes:
    return b"](" + b"}" * n + b"e"


def self_cycle() -> bytes:
    """A list that holds itself."""
    return b"]" + put(0) + get(0) + b"a"


def filled_after_sharing(levels: int, items: int) -> bytes:
    """``[dag, L0]``: a DAG over an empty list L0, which is filled with ``items`` dicts only
    after the DAG shares it (counted as it is built, the structure looks tiny)."""
    return b"](" + dag(levels) + get(0) + b"(" + b"}" * items + b"ee"


def marker(text: str) -> bytes:
    """How torch.save pickles the string ``text`` (a placeholder to splice over)."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


# ---------------------------------------------------------------- archives
@dataclass
class Hole:
    """A record of ``size`` zero bytes that are never written (a sparse file's hole)."""

    size: int


@dataclass
class Deflated:
    """A record of ``size`` zero bytes, deflate-compressed (a few kB per MB)."""

    size: int


@functools.lru_cache(maxsize=None)
def zeros_crc(size: int) -> int:
    crc, chunk = 0, bytes(1 << 24)
    for start in range(0, size, len(chunk)):
        crc = zlib.crc32(chunk[: min(len(chunk), size - start)], crc)
    return crc


def deflated_zeros(size: int) -> bytes:
    """A raw deflate stream of ``size`` (a multiple of 1 MiB) zero bytes: one compressed
    1 MiB block repeated (each ends in a full flush, so all are the same bytes)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (size >> 20) + c.flush()


def torch_records(state) -> list[tuple[str, bytes]]:
    """The records ``torch.save(state)`` writes, in order."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with zipfile.ZipFile(buffer) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def write_zip(path: Path, records: list[tuple[str, bytes | Hole | Deflated]], fake_entries: int = 0) -> Path:
    """Write a zip archive (stored records, as torch.save does) by hand. ``Hole`` records
    leave their bytes unwritten; ``fake_entries`` extra directory entries are added while
    the end record still declares only the real ones (a spoofed record count)."""
    directory = []
    with open(path, "wb") as f:
        for name, data in records:
            offset, raw = f.tell(), name.encode()
            if isinstance(data, Hole):
                method, size, stored, crc = 0, data.size, data.size, zeros_crc(data.size)
            elif isinstance(data, Deflated):
                body = deflated_zeros(data.size)
                method, size, stored, crc = 8, data.size, len(body), zeros_crc(data.size)
            else:
                method, size, stored, crc = 0, len(data), len(data), zlib.crc32(data)
            f.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0, crc, stored, size,
                                len(raw), 0) + raw)
            if isinstance(data, Hole):
                f.seek(data.size, 1)
            else:
                f.write(body if isinstance(data, Deflated) else data)
            directory.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                                         stored, size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        for i in range(fake_entries):
            raw = f"archive/pad/{i}".encode()
            directory.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0,
                                         len(raw), 0, 0, 0, 0, 0, 0) + raw)
        start = f.tell()
        f.write(b"".join(directory))
        n = len(records)
        f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, f.tell() - start, start, 0))
    return path


def spliced(state: dict, path: Path, splices: dict[str, bytes] | None = None, patch: dict[bytes, bytes] | None = None,
            by_size: dict[int, bytes | Hole | Deflated] | None = None, extra: dict[str, bytes | Hole] | None = None,
            fake_entries: int = 0) -> Path:
    """``torch.save(state)``, with each placeholder string ``state`` holds (a key of
    ``splices``) replaced by hand-written instructions, byte patches applied to the
    pickle, the record of a given size replaced (``by_size``: a placeholder tensor's
    data), records added (``extra``: name after ``archive/`` -> data), and
    ``fake_entries`` spoofed directory entries."""
    out: list[tuple[str, bytes | Hole | Deflated]] = []
    for name, data in torch_records(state):
        if name.endswith("data.pkl"):
            for text, ops in (splices or {}).items():
                assert data.count(marker(text)) == 1, text
                data = data.replace(marker(text), ops)
            for old, new in (patch or {}).items():
                assert old in data, old
                data = data.replace(old, new)
        out.append((name, (by_size or {}).get(len(data), data) if "/data/" in name else data))
    prefix = out[0][0].split("/")[0]
    out += [(f"{prefix}/{short}", data) for short, data in (extra or {}).items()]
    return write_zip(path, out, fake_entries)


def numel_patch(old: int, new: int) -> dict[bytes, bytes]:
    """Change a tensor's element count in its pickle (its BININT arguments: the storage's
    size and the tensor's shape, for a 1-D placeholder of a unique length ``old``)."""
    return {b"J" + struct.pack("<i", old): b"J" + struct.pack("<i", new)}
