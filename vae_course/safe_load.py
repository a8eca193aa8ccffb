"""Reading a file written by ``torch.save`` without trusting it: the one reader of
checkpoints and shipped weights.

:func:`read_torch_file` checks, in this order, each step bounded in time and
memory by what the file really holds:

1. the file: a regular file of at most :data:`MAX_FILE_BYTES`;
2. its zip directory, parsed here from the file's own bytes: the record count
   in the end record must be the number of records the directory holds (a
   spoofed count is refused before anything is allocated for it), every record
   stored uncompressed (``torch.save`` never compresses, and a deflated record
   can expand a thousandfold), inside the file, and the records together must
   account for the file's size;
3. its pickled structure (``data.pkl``, at most :data:`MAX_PICKLE_BYTES`),
   scanned *before unpickling* by :func:`vae_course.safe_pickle.scan`: object
   and reference counts, nesting, allowed instructions and globals;
4. its tensor data: each storage the pickle names is a record of exactly its
   size, and no record is left unused;
5. the caller's ``schema`` (which fields, and how many tensor bytes each may
   hold), on the scanned shape, still before unpickling;
6. ``torch.load(weights_only=True)`` from the same open file, then every
   tensor dense, on the CPU, of a plain dtype (:func:`check_tensors`).
"""
from __future__ import annotations

import os
import pickle
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch
from torch import Tensor

from .checkpoint_checks import CheckpointError
from .safe_pickle import MAX_NESTING, PickleRefused, PickleShape, scan

# A hard cap on a file (bytes). The course's largest checkpoint (the ConvVAE with
# its Adam state) is about 21 MB; a model at the parameter cap with Adam, 800 MB.
MAX_FILE_BYTES = 2 * 1024**3
# torch.save writes one record per tensor storage plus a handful of small ones.
MAX_ARCHIVE_ENTRIES = 10_000
MAX_DIRECTORY_BYTES = 4 * 1024**2  # the zip's central directory (10,000 records take about 700 kB)
MAX_PICKLE_BYTES = 8 * 1024**2  # the pickled structure: with a 10,000-epoch history, about 1.8 MB
MAX_METADATA_BYTES = 4096  # torch.save's small records (version, byteorder, ...)
PLAIN_DTYPES = {
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
}
Schema = Callable[[PickleShape], None]

_EOCD, _ZIP64_LOCATOR, _ZIP64_EOCD = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_CENTRAL, _LOCAL = b"PK\x01\x02", b"PK\x03\x04"


class _Refused(Exception):
    """A refusal inside this module; :func:`read_torch_file` gives it the caller's label and class."""


@dataclass(frozen=True)
class Record:
    """One zip record: where its header starts, its size (bytes) and CRC-32."""

    name: str
    offset: int
    size: int
    crc: int


# ---------------------------------------------------------------- the zip directory
def _end_record(f: BinaryIO, size: int) -> tuple[int, int, int, int]:
    """``(records, directory bytes, directory offset, where the end records start)``,
    from the end record and, when present, the ZIP64 one (which must agree)."""
    damaged = _Refused("is truncated or corrupted, or is not a PyTorch checkpoint (not a zip archive); it was not "
                       "loaded (nothing was executed) and is left as it is: use an earlier copy")
    tail_len = min(size, 65_536 + 22)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise damaged
    disk, cd_disk, on_disk, entries, cd_bytes, cd_offset, comment = struct.unpack("<HHHHIIH", tail[at + 4: at + 22])
    if disk or cd_disk or on_disk != entries or at + 22 + comment != len(tail):
        raise damaged
    start = size - tail_len + at
    loc = at - 20
    if loc >= 0 and tail[loc: loc + 4] == _ZIP64_LOCATOR:
        (z_offset,) = struct.unpack("<Q", tail[loc + 8: loc + 16])
        if z_offset + 56 > size - tail_len + loc:
            raise damaged
        f.seek(z_offset)
        record = f.read(56)
        if record[:4] != _ZIP64_EOCD:
            raise damaged
        z_entries_disk, z_entries, z_bytes, z_offset_cd = struct.unpack("<QQQQ", record[24:56])
        for small, large, full in ((entries, z_entries, 0xFFFF), (on_disk, z_entries_disk, 0xFFFF),
                                   (cd_bytes, z_bytes, 0xFFFFFFFF), (cd_offset, z_offset_cd, 0xFFFFFFFF)):
            if small != full and small != large:
                raise _Refused(f"has two end records that disagree ({small} vs {large} records or bytes): a "
                               f"spoofed zip directory; it was not loaded")
        entries, cd_bytes, cd_offset, start = z_entries, z_bytes, z_offset_cd, z_offset
    elif 0xFFFF in (entries,) or 0xFFFFFFFF in (cd_bytes, cd_offset):
        raise damaged
    return entries, cd_bytes, cd_offset, start


def _zip64_sizes(extra: bytes, wanted: list[str], values: dict[str, int]) -> None:
    """Fill the 32-bit fields that were 0xFFFFFFFF (``wanted``) from the ZIP64 extra field."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[at: at + 4])
        if tag == 1:
            body = extra[at + 4: at + 4 + length]
            for i, key in enumerate(wanted):
                if len(body) < 8 * (i + 1):
                    raise _Refused("has a damaged zip directory (a ZIP64 field is short); it was not loaded")
                values[key] = struct.unpack("<Q", body[8 * i: 8 * i + 8])[0]
            return
        at += 4 + length
    raise _Refused("has a damaged zip directory (a ZIP64 field is missing); it was not loaded")


def read_directory(f: BinaryIO, size: int) -> tuple[dict[str, Record], int]:
    """Every record of the zip, parsed from the file's bytes with hard limits.

    Reads at most :data:`MAX_DIRECTORY_BYTES` and exactly as many entries as the end
    record declares (at most :data:`MAX_ARCHIVE_ENTRIES`); the entries must fill the
    directory exactly, so a count that hides more records is refused.
    """
    entries, cd_bytes, cd_offset, end = _end_record(f, size)
    if entries > MAX_ARCHIVE_ENTRIES:
        raise _Refused(f"declares {entries} records (a checkpoint has at most {MAX_ARCHIVE_ENTRIES}); it is damaged "
                       f"or was not written by vae_course, and was not loaded")
    if cd_bytes > MAX_DIRECTORY_BYTES or cd_offset + cd_bytes > end:
        raise _Refused(f"declares a zip directory of {cd_bytes:,} bytes that its {size:,} bytes cannot hold or that "
                       f"no checkpoint needs; it is damaged or crafted, and was not loaded")
    f.seek(cd_offset)
    directory = f.read(cd_bytes)
    records: dict[str, Record] = {}
    at = 0
    for _ in range(entries):
        if directory[at: at + 4] != _CENTRAL or at + 46 > len(directory):
            raise _Refused("has a damaged zip directory; it was not loaded and is left as it is: use an earlier copy")
        (flags, method, crc, comp, plain, n_name, n_extra, n_comment, disk, offset) = struct.unpack(
            "<2xHH4xIIIHHHH6xI", directory[at + 6: at + 46])
        name_bytes = directory[at + 46: at + 46 + n_name]
        extra = directory[at + 46 + n_name: at + 46 + n_name + n_extra]
        values = {"plain": plain, "comp": comp, "offset": offset}
        wanted = [k for k in ("plain", "comp", "offset") if values[k] == 0xFFFFFFFF]
        if wanted:
            _zip64_sizes(extra, wanted, values)
        name = name_bytes.decode("utf-8", "replace")
        if method != 0 or values["comp"] != values["plain"]:
            raise _Refused(f"holds a compressed record ({name[:80]!r}), which torch.save never writes and which "
                           f"could expand far beyond the file's size; it was not loaded")
        if flags & 1 or disk or name in records or len(name_bytes) != n_name:
            raise _Refused("has a damaged or encrypted zip directory; it was not loaded")
        records[name] = Record(name, values["offset"], values["plain"], crc)
        at += 46 + n_name + n_extra + n_comment
    if at != cd_bytes:
        raise _Refused(f"declares {entries} records but its zip directory holds {'more' if at < cd_bytes else 'fewer'} "
                       f"(a spoofed record count); it is damaged or crafted, and was not loaded")
    return records, end


def _check_sizes(records: dict[str, Record], size: int, end: int) -> int:
    """The records must lie inside the file and account for its size; returns their total bytes."""
    declared = sum(r.size for r in records.values())
    if declared > size or any(r.offset + 30 + r.size > end for r in records.values()):
        raise _Refused(f"declares {declared} bytes of records but the file holds {size}; it is damaged or crafted, "
                       f"and was not loaded")
    # Per record: a local header with its name and alignment padding, a data descriptor
    # and a directory entry; plus the end records. Anything beyond holds no data.
    overhead = sum(30 + 46 + 2 * len(r.name.encode()) + 64 + 24 + 64 for r in records.values()) + 65_536 + 200
    if size > declared + overhead:
        raise _Refused(f"is {size:,} bytes but its records hold only {declared:,}: the rest belongs to no record "
                       f"(a padded or crafted file); it was not loaded")
    return declared


def _read_record(f: BinaryIO, record: Record, end: int) -> bytes:
    """The bytes of one stored record, located through its local header, CRC-checked."""
    f.seek(record.offset)
    header = f.read(30)
    if len(header) < 30 or header[:4] != _LOCAL:
        raise _Refused("is truncated or corrupted (a zip record header is missing); it was not loaded")
    n_name, n_extra = struct.unpack("<HH", header[26:30])
    start = record.offset + 30 + n_name + n_extra
    if start + record.size > end:
        raise _Refused("is truncated or corrupted (a zip record runs past the directory); it was not loaded")
    f.seek(start)
    data = f.read(record.size)
    if len(data) != record.size or zlib.crc32(data) != record.crc:
        raise _Refused("is truncated or corrupted (its pickled structure fails its CRC-32); it was not loaded and "
                       "is left as it is: use an earlier copy")
    return data


def _check_storages(records: dict[str, Record], shape: PickleShape, prefix: str) -> None:
    """Each storage the pickle names is a record of exactly its size; every data record is used."""
    from .safe_pickle import STORAGE_BYTES

    for key, (kind, numel) in shape.storages.items():
        record = records.get(f"{prefix}/data/{key}")
        if record is None:
            raise _Refused(f"is truncated or corrupted (the tensor data {key!r} is missing); it was not loaded")
        if record.size != numel * STORAGE_BYTES[kind]:
            raise _Refused(f"declares {numel:,} elements of tensor data {key!r} but its record holds "
                           f"{record.size:,} bytes; it is damaged or crafted, and was not loaded")
    for name, record in records.items():
        inside = name[len(prefix) + 1:] if name.startswith(prefix + "/") else None
        if inside is None:
            raise _Refused(f"holds a record outside its archive folder ({name[:80]!r}); it was not loaded")
        if inside.startswith("data/"):
            if inside[5:] not in shape.storages:
                raise _Refused(f"holds tensor data that no tensor uses ({name[:80]!r}, {record.size:,} bytes); it "
                               f"is damaged or crafted, and was not loaded")
        elif inside != "data.pkl" and record.size > MAX_METADATA_BYTES:
            raise _Refused(f"holds an unexpected {record.size:,}-byte record {name[:80]!r}; it was not loaded")


# ---------------------------------------------------------------- after loading
def is_dense(t: Tensor) -> bool:
    """True when ``t``'s elements occupy distinct, gap-free memory (any dimension
    order, e.g. ``channels_last``): no zero strides, no overlaps."""
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1)
    expected = 1
    for stride, size in dims:
        if size == 0:
            return True
        if stride != expected:
            return False
        expected *= size
    return True


def check_tensors(obj: Any, budget_bytes: int, label: str, error: type[ValueError] = CheckpointError) -> None:
    """Walk everything loaded, each object once (a shared one is not walked again, so
    a structure of shared references costs what it holds, not what its paths spell):
    nesting at most :data:`MAX_NESTING` deep; every tensor strided, dense (see
    :func:`is_dense`), on the CPU, of a dtype in :data:`PLAIN_DTYPES`; all tensors
    together no larger than ``budget_bytes`` (the bytes the file's records hold)."""
    total = 0
    seen: set[int] = set()
    stack = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (Tensor, dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if depth > MAX_NESTING:
            raise _fail(error, label, f"is nested more than {MAX_NESTING} levels deep; it is damaged or crafted")
        if isinstance(item, Tensor):
            if item.layout != torch.strided or item.device.type != "cpu" or item.dtype not in PLAIN_DTYPES:
                raise _fail(error, label, f"holds a tensor of an unexpected kind ({item.layout}, {item.dtype}, "
                                          f"{item.device.type}); it was not used")
            if not is_dense(item):
                raise _fail(error, label, f"holds a tensor of shape {tuple(item.shape)} with overlapping memory "
                                          f"(strides {item.stride()}), which torch.save never writes from a model; "
                                          f"it was not used")
            total += item.numel() * item.element_size()
            if total > budget_bytes:
                raise _fail(error, label, "holds tensors that share memory and add up to more than the file "
                                          "holds; it is damaged or crafted, and was not used")
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            stack.extend((k, depth + 1) for k in item.keys() if not isinstance(k, (str, int)))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)


# ---------------------------------------------------------------- the reader
def _fail(error: type[ValueError], label: str, problem: str) -> ValueError:
    sep = "" if problem.startswith(":") else " "
    return error(" ".join(f"{label}{sep}{problem}".split()))


def _checked_shape(f: BinaryIO, size: int, schema: Schema) -> int:
    """Steps 2 to 5 of the module docstring; returns the bytes the records hold."""
    if size > MAX_FILE_BYTES:
        raise _Refused(f"is {size / 2**30:.1f} GiB, over this vae_course's limit of {MAX_FILE_BYTES / 2**30:.0f} "
                       f"GiB for a checkpoint; it was not loaded")
    records, end = read_directory(f, size)
    declared = _check_sizes(records, size, end)
    pickles = [r for r in records.values() if r.name.endswith("/data.pkl") and r.name.count("/") == 1]
    if len(pickles) != 1:
        raise _Refused("is not a PyTorch checkpoint (its archive has no single data.pkl); it was not loaded")
    if pickles[0].size > MAX_PICKLE_BYTES:
        raise _Refused(f"has a {pickles[0].size / 2**20:.0f} MB pickled structure (the limit is "
                       f"{MAX_PICKLE_BYTES / 2**20:.0f} MB); it was not loaded")
    try:
        shape = scan(_read_record(f, pickles[0], end))
    except PickleRefused as err:
        raise _Refused(str(err)) from None
    _check_storages(records, shape, pickles[0].name.split("/")[0])
    try:
        schema(shape)
    except ValueError as err:  # its message completes the label
        raise _Refused(str(err)) from None
    return declared


def read_torch_file(path: str | os.PathLike, schema: Schema, noun: str = "checkpoint",
                    error: type[ValueError] = CheckpointError) -> Any:
    """Load a ``torch.save`` file after every check of the module docstring.

    ``schema(shape)`` checks the scanned structure before anything is unpickled;
    it raises a ``ValueError`` whose message completes ``"<noun> <path>"``.
    Every refusal is one ``error`` line, ``"<noun> <path> <what is wrong>; <what to
    do>"``. The file is opened once: the bytes checked are the bytes loaded.
    """
    path = Path(path)
    label = f"{noun} {path}"
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise _Refused("is a folder, not a file: pass the checkpoint.pt inside it")
        if not stat.S_ISREG(mode):  # a pipe would block, a device never end
            raise _Refused("is not a regular file (a pipe or a device?); pass a checkpoint.pt file")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            declared = _checked_shape(f, size, schema)
            f.seek(0)
            state = torch.load(f, map_location="cpu", weights_only=True)
    except _Refused as err:
        raise _fail(error, label, str(err)) from None
    except FileNotFoundError:
        raise error(f"{noun}: no file at {path}") from None
    except OSError as err:  # permissions, a lock, a failing disk: the file may be fine
        raise _fail(error, label, f"cannot be read ({err.strerror or type(err).__name__}); check that it is "
                                  f"readable by you and not locked by another program. The file was not changed.") \
            from None
    except pickle.UnpicklingError:  # the scan accepted it, torch's unpickler did not: damaged
        raise _fail(error, label, "is truncated or corrupted, or is not a PyTorch checkpoint, and cannot be read "
                                  "safely (nothing was executed); it is left as it is: use an earlier copy") from None
    except Exception as err:  # noqa: BLE001 - damaged bytes can fail anywhere inside torch.load
        raise _fail(error, label, f"is truncated or corrupted and cannot be read ({type(err).__name__}); it is left "
                                  f"as it is: use an earlier copy") from None
    check_tensors(state, declared, label, error)
    return state
