"""Issue 23, classes 1 and 2: files whose *structure* explodes after a small pickle,
and shipped weights that skipped validation, are refused in one line, in bounded
time and memory.

Every hostile file is written here byte by byte (:mod:`hostile_files`) from a
real one-epoch training state or from the package's own shipped weights. One
subprocess reads them all the way the package does (:func:`checkpoint_probe.limited_loads`):
its address space may grow by at most 1 GiB after the imports, and each file is
stopped after 60 s (limits, not timings: each hostile file here made the old
loader hang, or use 0.45 to 1.7 GB, or accept it). Each must end in one
``CheckpointError`` / ``ShippedWeightsError`` line that names the actual problem.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

from checkpoint_probe import limited_loads, trained_state
from course_testing import needs_mnist
from hostile_files import (Deflated, Hole, dag, empty_dicts, filled_after_sharing, numel_patch, references,
                           self_cycle, spliced, write_zip, torch_records)
from vae_course.checkpoint import save_checkpoint
from vae_course.weights import WEIGHTS_DIR, read_manifest, sha256_of

pytestmark = needs_mnist

GIB = 1024**3
PLACEHOLDER = 70_001  # a tensor length nothing else in the state has
HOLE = 3 * GIB // 2  # a sparse 1.5 GiB record: no disk blocks, 1.5 GB if read
SHIPPED = "vae-2d"  # one of the package's shipped models (784-400-2 MLP VAE, fp16)


# ---------------------------------------------------------------- checkpoints (class 1)
def _with(base: dict, **fields) -> dict:
    """A copy of the state with ``fields`` set and a checksum field, so the old loader would
    have hashed (walked) the whole structure before finding the checksum wrong."""
    return {**copy.deepcopy(base), "checksum": "0" * 64, **fields}


def _sparse(base: dict, path: Path, where: str) -> Path:
    """A 1.5 GiB tensor whose bytes are a hole, placed at ``where``: an unknown field, an
    extra weight of the model, or a record no tensor uses."""
    state = _with(base)
    if where == "orphan":
        return spliced(state, path, extra={"data/999": Hole(HOLE)})
    if where == "unknown_field":
        state["blob"] = torch.zeros(PLACEHOLDER)
    else:
        state["model_state"]["fc9.weight"] = torch.zeros(PLACEHOLDER)
    return spliced(state, path, patch=numel_patch(PLACEHOLDER, HOLE // 4), by_size={PLACEHOLDER * 4: Hole(HOLE)})


def _spoofed_count(base: dict, path: Path, fake: int) -> Path:
    """The real records, then ``fake`` more directory entries the end record does not count."""
    return write_zip(path, torch_records(_with(base)), fake_entries=fake)


RECORD = {"epoch": 1, "loss": 100.0, "recon": 90.0, "kl": 10.0, "beta": 1.0, "lr": 1e-3, "seconds": 1.0,
          "images_per_second": 1e4, "test_loss": 100.0, "test_recon": 90.0, "test_kl": 10.0, "test_elbo": -100.0,
          "test_elbo_stderr": 0.5}

# name -> (how it is written, words its refusal must contain)
CHECKPOINTS = {
    "dag_extra_field": (lambda b, p: spliced(_with(b, extra="@X"), p, {"@X": dag(28)}),
                        "once its shared references are followed"),
    "dag_history": (lambda b, p: spliced(_with(b, history="@H"), p, {"@H": b"](" + dag(28) + b"e"}),
                    "once its shared references are followed"),
    "record_referenced_a_million_times": (
        lambda b, p: spliced(_with(b, history="@H"), p, {"@H": references(RECORD, 1_000_000)}),
        "refers back to earlier objects more than 1,000,000 times"),
    "record_referenced_500_000_times": (  # under the reference count: the tree size stops it
        lambda b, p: spliced(_with(b, history="@H"), p, {"@H": references(RECORD, 500_000)}),
        "once its shared references are followed"),
    "empty_dicts_extra_field": (lambda b, p: spliced(_with(b, extra="@X"), p, {"@X": empty_dicts(7_900_000)}),
                                "more than 500,000 objects"),
    "empty_dicts_history": (lambda b, p: spliced(_with(b, history="@H"), p, {"@H": empty_dicts(7_900_000)}),
                            "more than 500,000 objects"),
    "list_inside_itself": (lambda b, p: spliced(_with(b, history="@H"), p, {"@H": self_cycle()}),
                           "inside itself (a cycle)"),
    "filled_after_sharing": (lambda b, p: spliced(_with(b, history="@H"), p,
                                                  {"@H": filled_after_sharing(12, 200_000)}),
                             "changes a container after placing it inside another one"),
    "unknown_field": (lambda b, p: save_checkpoint(_with(b, note="hi"), p),
                      "holds a field this vae_course does not know ('note')"),
    "sparse_unknown_field": (lambda b, p: _sparse(b, p, "unknown_field"), "does not know ('blob')"),
    "sparse_extra_weight": (lambda b, p: _sparse(b, p, "weight"), "model_state holds 1,610,"),
    "sparse_orphan_record": (lambda b, p: _sparse(b, p, "orphan"), "tensor data that no tensor uses"),
    "spoofed_count_large_directory": (lambda b, p: _spoofed_count(b, p, 300_000), "declares a zip directory of"),
    "spoofed_count": (lambda b, p: _spoofed_count(b, p, 40_000), "(a spoofed record count)"),
}


# ---------------------------------------------------------------- shipped weights (class 2)
def _shipped_copy(folder: Path, entry_edit=None, state_edit=None, records=None, manifest_text=None) -> Path:
    """A folder holding one shipped model (the package's own ``SHIPPED``), edited: its
    manifest entry, its weights (re-saved, with the manifest's SHA-256 updated to match:
    a checksum proves nothing about a crafted file), or its raw records."""
    folder.mkdir()
    entry = copy.deepcopy(read_manifest(WEIGHTS_DIR)[SHIPPED])
    path = folder / entry["file"]
    shutil.copy(WEIGHTS_DIR / entry["file"], path)
    if state_edit or records:
        state = torch.load(path, weights_only=True)
        if state_edit:
            state_edit(state)
        if records:
            spliced(state, path, **records(state))
        else:
            torch.save(state, path)
        entry["sha256"] = sha256_of(path)
    if entry_edit:
        entry_edit(entry)
    (folder / "manifest.json").write_text(manifest_text or json.dumps({SHIPPED: entry}))
    return folder


def _nan(state: dict) -> None:
    state["fc1.weight"][0, 0] = float("nan")


def _bomb(state: dict) -> dict:
    """fc1.weight's record deflated and declared 1.5 GB: the pickle's element count patched to match."""
    numel = state["fc1.weight"].numel()
    return {"patch": {b"J" + numel.to_bytes(4, "little"): b"J" + (HOLE // 2).to_bytes(4, "little")},
            "by_size": {numel * 2: Deflated(HOLE)}}


def _set_entry(key: str, value) -> callable:
    """An edit of one manifest field: ``"file"`` or ``"model_config/hidden_dim"``."""
    def edit(entry: dict) -> None:
        *parents, last = key.split("/")
        holder = entry[parents[0]] if parents else entry
        holder[last] = value
    return edit


SHIPPED_CASES = {
    "shipped_nan_fp16": (dict(state_edit=_nan), "NaN or infinite weights in 'fc1.weight'"),
    "shipped_deflate_bomb": (dict(records=_bomb), "compressed record"),
    "shipped_manifest_hidden_dim": (dict(entry_edit=_set_entry("model_config/hidden_dim", 150_000)),
                                    "hidden_dim should be an integer from 1 to 65536"),
    "shipped_manifest_over_parameter_cap": (dict(entry_edit=_set_entry("model_config/hidden_dim", 40_000)),
                                            "over this vae_course's limit"),
    "shipped_manifest_seed": (dict(entry_edit=_set_entry("config/seed", 2**64)), "train_config seed should be"),
    "shipped_manifest_file_outside": (dict(entry_edit=_set_entry("file", "../../etc/passwd")),
                                      "'file' should name a file in that folder"),
    "shipped_manifest_huge": (dict(manifest_text=" " * (3 * 1024**2) + "{}"), "far more than a manifest"),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    base = trained_state()
    folder = tmp_path_factory.mktemp("structure")
    cases = [("valid", "checkpoint", save_checkpoint(copy.deepcopy(base), folder / "valid.pt"))]
    for name, (write, _) in CHECKPOINTS.items():
        cases.append((name, "checkpoint", write(base, folder / f"{name}.pt")))
    cases.append(("shipped_valid", "shipped", [str(_shipped_copy(folder / "shipped_valid")), SHIPPED]))
    for name, (edits, _) in SHIPPED_CASES.items():
        cases.append((name, "shipped", [str(_shipped_copy(folder / name, **edits)), SHIPPED]))
    proc, results = limited_loads(cases)
    return folder, proc, results


def test_the_sparse_files_are_sparse(refused):
    folder, _, _ = refused
    path = folder / "sparse_extra_weight.pt"
    if path.stat().st_blocks * 512 > GIB:  # a file system without holes wrote the zeros: still a valid case
        pytest.skip("this file system does not keep holes")
    assert path.stat().st_size > GIB


def test_the_untouched_files_load_within_the_limits(refused):
    _, proc, results = refused
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results["valid"]["outcome"] == "loaded", results["valid"]
    assert results["shipped_valid"]["outcome"] == "loaded", results["shipped_valid"]


@pytest.mark.parametrize("name, words", [(n, w) for n, (_, w) in {**CHECKPOINTS, **SHIPPED_CASES}.items()])
def test_each_hostile_file_is_refused_in_one_line_naming_its_problem(refused, name, words):
    result = refused[2].get(name)
    assert result is not None, f"no result: the reader died before {name} ({refused[1].stderr[-1500:]})"
    assert result["outcome"] == "refused", result
    assert "\n" not in result["detail"] and words in result["detail"], result["detail"]
    if result["peak_mb"] is not None:  # refused before it could grow: far below the 1 GiB limit
        assert result["peak_mb"] < 200, result


def test_a_checkpoint_at_the_largest_history_loads(tmp_path):
    """The limits leave room for real checkpoints: 10,000 epochs (the most a run may have),
    each with its full record, load, with a wide margin below every limit."""
    import zipfile

    from vae_course.bounds import MAX_EPOCHS
    from vae_course.checkpoint import load_checkpoint
    from vae_course.safe_load import MAX_PICKLE_BYTES
    from vae_course.safe_pickle import MAX_OBJECTS, MAX_TREE_NODES, scan

    state = copy.deepcopy(trained_state())
    record = state["history"][0]
    state["history"] = [{**record, "epoch": i + 1, "loss": record["loss"] + i} for i in range(MAX_EPOCHS)]
    state["epoch"] = MAX_EPOCHS
    path = save_checkpoint(state, tmp_path / "long.pt")
    loaded = load_checkpoint(path)
    assert len(loaded["history"]) == MAX_EPOCHS and loaded["history"][-1]["epoch"] == MAX_EPOCHS
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read("archive/data.pkl")
    shape = scan(pickled)
    assert len(pickled) < MAX_PICKLE_BYTES / 3 and shape.objects < MAX_OBJECTS / 3
    assert shape.root.nodes < MAX_TREE_NODES / 10
