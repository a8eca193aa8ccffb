"""Issue 16, classes 1, 2 and 6: crafted checkpoints are refused, in bounded memory, and crash nothing.

Each case below writes one hostile file from a real one-epoch training state.
All of them pass ``weights_only=True``, and most carry a correct SHA-256 (the
checksum is unkeyed: anyone can recompute it). A subprocess loads each with
``load_checkpoint`` and restores it into a trainer (:mod:`checkpoint_probe`):
every hostile file must give one ``CheckpointError`` line, the untouched file
must load and train, and no file may raise the process's memory by more than
``MEMORY_BOUND_MB``.
"""
from __future__ import annotations

import copy
import math
import struct
import zipfile
from pathlib import Path
from typing import Callable

import pytest
import torch

from checkpoint_probe import CAN_MEASURE_PEAK, MEMORY_BOUND_MB, probe, trained_state
from course_testing import needs_mnist
from vae_course.checkpoint import CheckpointError, restore_training_state, save_checkpoint
from vae_course.hashing import state_checksum

pytestmark = needs_mnist

# Sizes of the memory attacks: each would need over a gigabyte if the loader
# expanded it (1.2 GB of zeros behind one float; a 200,000-unit hidden layer).
HUGE_ELEMENTS = 300_000_000
HUGE_HIDDEN = 200_000
DEFLATED_ELEMENTS = 160_000_000  # 640 MB of zeros in a ~0.6 MB deflated record
MARK = 70_001  # the length of a placeholder tensor, patched in the pickle

Mutation = Callable[[dict], None]


def _opt(state: dict) -> dict:
    return state["optimizer_state"]


def _first_param_state(state: dict) -> dict:
    return _opt(state)["state"][0]


def _set(path: str, value) -> Mutation:
    """A mutation that sets ``state[k1][k2]...`` (keys separated by '/') to ``value``."""
    def mutate(state: dict) -> None:
        *parents, last = path.split("/")
        target = state
        for key in parents:
            target = target[int(key) if key.isdigit() and isinstance(target, list) else key]
        target[int(last) if isinstance(target, list) else last] = value(target) if callable(value) else value
    return mutate


def _opt_state(key: str, value: Callable) -> Mutation:
    def mutate(state: dict) -> None:
        entry = _first_param_state(state)
        entry[key] = value(entry[key])
    return mutate


def _nan_weight(state: dict) -> None:
    state["model_state"]["fc1.weight"][0, 0] = float("nan")


def _two_groups(state: dict) -> None:
    groups = _opt(state)["param_groups"]
    groups.append(copy.deepcopy(groups[0]))


def _short_group(state: dict) -> None:
    _opt(state)["param_groups"][0]["params"].pop()


def _stray_state(state: dict) -> None:
    _opt(state)["state"][999] = copy.deepcopy(_first_param_state(state))


def _missing_key(state: dict) -> None:
    del _first_param_state(state)["exp_avg_sq"]


def _drop_half_the_adam_state(state: dict) -> None:
    adam = _opt(state)["state"]
    for j in list(adam)[::2]:
        del adam[j]


def _steps(value: float) -> Mutation:
    def mutate(state: dict) -> None:
        for entry in _opt(state)["state"].values():
            entry["step"] = torch.tensor(value)
    return mutate


def _cvae(classes: int) -> Mutation:
    """The VAE's state relabelled a conditional VAE with ``classes`` classes."""
    def mutate(state: dict) -> None:
        state["model_name"] = "cvae"
        state["model_config"]["num_classes"] = classes
    return mutate


def _deep(state: dict) -> None:
    nest: list = []
    for _ in range(100):
        nest = [nest]
    state["deep"] = nest


def _shared_views(state: dict) -> None:
    big = torch.zeros(1_000_000)  # one 4 MB storage behind 100 tensors
    state["views"] = [big] * 100


# name -> (how the file is written, mutation). "saved": re-checksummed with
# save_checkpoint; "raw": torch.save with a made-up checksum (so the old loader
# would hash it); "nochecksum": torch.save without one.
CASES: dict[str, tuple[str, Mutation]] = {
    # crafted optimizer state (a SIGSEGV inside fused Adam before issue 16)
    "opt_too_small": ("saved", _opt_state("exp_avg", lambda t: torch.zeros(3))),
    "opt_too_large": ("saved", _opt_state("exp_avg", lambda t: torch.zeros(t.shape[0] + 5, t.shape[1]))),
    "opt_zero_stride": ("raw", _opt_state("exp_avg", lambda t: torch.zeros(1).expand(t.shape))),
    "opt_float64": ("saved", _opt_state("exp_avg", lambda t: t.double())),
    "opt_nan": ("saved", _opt_state("exp_avg", lambda t: torch.full_like(t, math.nan))),
    "opt_negative_sq": ("saved", _opt_state("exp_avg_sq", lambda t: -t - 1)),
    "opt_step_negative": ("saved", _opt_state("step", lambda t: torch.tensor(-1.0))),
    "opt_step_nan": ("saved", _opt_state("step", lambda t: torch.tensor(math.nan))),
    "opt_step_vector": ("saved", _opt_state("step", lambda t: torch.zeros(3))),
    "opt_step_text": ("saved", _opt_state("step", lambda t: "1")),
    "opt_missing_key": ("saved", _missing_key),
    "opt_two_groups": ("saved", _two_groups),
    "opt_short_group": ("saved", _short_group),
    "opt_stray_state": ("saved", _stray_state),
    "opt_lr_nan": ("saved", _set("optimizer_state/param_groups/0/lr", math.nan)),
    "opt_betas": ("saved", _set("optimizer_state/param_groups/0/betas", (1.5, 0.999))),
    "opt_amsgrad": ("saved", _set("optimizer_state/param_groups/0/amsgrad", True)),
    "opt_not_dict": ("saved", _set("optimizer_state", [1, 2])),
    # tensors whose memory overlaps: the old checksum made them contiguous
    # (in a field that holds a tensor: an unknown field is refused before loading, see test_hostile_structure)
    "zero_stride_huge": ("raw", _set("data_generator", torch.zeros(1).expand(HUGE_ELEMENTS))),
    "overlapping_weight": ("raw", _set("model_state/fc1.weight", torch.zeros(800).as_strided((16, 784), (1, 1)))),
    "shared_views": ("raw", _shared_views),
    "sparse": ("raw", _set("extra", torch.eye(3).to_sparse())),
    "complex": ("raw", _set("extra", torch.zeros(2, dtype=torch.complex64))),
    # model configs: built (and allocated) before anything was checked
    "huge_hidden": ("saved", _set("model_config/hidden_dim", HUGE_HIDDEN)),
    "over_parameter_cap": ("saved", _set("model_config/hidden_dim", 40_000)),
    "config_text": ("saved", _set("model_config/latent_dim", "4")),
    "config_float": ("saved", _set("model_config/latent_dim", 4.0)),
    "config_zero": ("saved", _set("model_config/latent_dim", 0)),
    "config_unknown": ("saved", _set("model_config/depth", 3)),
    # the model: another class, other sizes, bad weights
    "other_class_cvae": ("saved", _set("model_name", "cvae")),
    "other_class_conv": ("saved", _set("model_name", "conv-vae")),
    "other_class_ae": ("saved", _set("model_name", "ae")),
    "unknown_model": ("saved", _set("model_name", "transformer")),
    "other_latent": ("saved", _set("model_config/latent_dim", 5)),
    "nan_weights": ("saved", _nan_weight),
    "inf_bias": ("saved", _set("model_state/fc4.bias", lambda d: torch.full_like(d["fc4.bias"], math.inf))),
    "weight_shape": ("saved", _set("model_state/fc1.weight", torch.zeros(16, 783))),
    "weight_dtype": ("saved", _set("model_state/fc1.weight", lambda d: d["fc1.weight"].double())),
    "extra_weight": ("saved", _set("model_state/fc9.weight", torch.zeros(2))),
    "weights_not_tensors": ("saved", _set("model_state/fc1.weight", [0.0] * 4)),
    # fields of the wrong type or range
    "negative_epoch": ("saved", _set("epoch", -1)),
    "epoch_text": ("saved", _set("epoch", "1")),
    "epoch_float": ("saved", _set("epoch", 1.0)),
    "epoch_bool": ("saved", _set("epoch", True)),
    "epoch_history_mismatch": ("saved", _set("epoch", 5)),
    "history_text": ("saved", _set("history", "abc")),
    "history_nan": ("saved", _set("history/0/loss", math.nan)),
    "history_value_text": ("saved", _set("history/0/loss", "low")),
    "train_config_list": ("saved", _set("train_config/lr", [1])),
    "train_config_model": ("saved", _set("train_config/model", "cvae")),
    "interrupted_text": ("saved", _set("interrupted", "yes")),
    "scaler_list": ("saved", _set("scaler_state", [])),
    "scaler_nan": ("saved", _set("scaler_state", {"scale": math.nan, "growth_factor": 2.0, "backoff_factor": 0.5,
                                                  "growth_interval": 2000, "_growth_tracker": 0})),
    "rng_text": ("saved", _set("rng", "seed")),
    "rng_torch_short": ("saved", _set("rng/torch", torch.zeros(10, dtype=torch.uint8))),
    "rng_torch_garbage": ("saved", _set("rng/torch", torch.full((5056,), 255, dtype=torch.uint8))),
    "rng_python_index": ("saved", _set("rng/python/1/624", 700)),
    "rng_python_short": ("saved", _set("rng/python/1", [1, 2, 3])),
    "rng_numpy_pos": ("saved", _set("rng/numpy/pos", 700)),
    "rng_numpy_keys": ("saved", _set("rng/numpy/keys", torch.full((624,), -1, dtype=torch.int64))),
    "data_generator_float": ("saved", _set("data_generator", lambda s: s["data_generator"].float())),
    "data_generator_garbage": ("saved", _set("data_generator", torch.zeros(5056, dtype=torch.uint8))),
    "noise_generator_short": ("saved", _set("noise_generator", torch.zeros(16, dtype=torch.uint8))),
    "lr_schedule_nan": ("saved", _set("lr_schedule/lr", math.nan)),
    "deep_nesting": ("saved", _deep),
    # values at Python's and C's limits (issue 23): one line, never an OverflowError
    "epoch_huge": ("saved", _set("epoch", 10**400)),
    "history_loss_huge": ("saved", _set("history/0/loss", 10**400)),
    "train_config_lr_huge": ("saved", _set("train_config/lr", 10**400)),
    "opt_step_huge": ("saved", _opt_state("step", lambda t: 10**400)),
    "train_config_empty": ("saved", _set("train_config", {})),
    "train_config_seed_2_64": ("saved", _set("train_config/seed", 2**64)),
    "train_config_seed_2_63": ("saved", _set("train_config/seed", 2**63 - 1)),
    "cvae_one_class": ("saved", _cvae(1)),
    "cvae_five_classes": ("saved", _cvae(5)),
    "unknown_field": ("saved", _set("note", "hi")),
    # finite but inconsistent: an optimizer state must be complete and agree with the settings
    "opt_weight_decay_huge": ("saved", _set("optimizer_state/param_groups/0/weight_decay", 1e30)),
    "opt_eps_changed": ("saved", _set("optimizer_state/param_groups/0/eps", 1.0)),
    "opt_lr_zero": ("saved", _set("optimizer_state/param_groups/0/lr", 0.0)),
    "opt_half_the_state_missing": ("saved", _drop_half_the_adam_state),
    "opt_steps_too_many": ("saved", _steps(1e9)),
    "opt_steps_differ": ("saved", _opt_state("step", lambda t: t + 3)),
    "lr_schedule_disagrees": ("saved", _set("lr_schedule/base_lr", 5.0)),
    # the format itself
    "missing_checksum": ("nochecksum", lambda s: None),
    "checksum_wrong": ("saved-then", _set("checksum", "0" * 64)),
    "checksum_number": ("saved-then", _set("checksum", 0)),
    "version_newer": ("saved", _set("format_version", 3)),
    "version_zero": ("saved", _set("format_version", 0)),
    "version_text": ("saved", _set("format_version", "2")),
    "missing_optimizer": ("saved", lambda s: s.pop("optimizer_state")),
    "missing_model_state": ("saved", lambda s: s.pop("model_state")),
}


# "raw" files get a made-up checksum (enough for the loader to hash what it
# loaded); set True for an attacker's correct one (hashed in pieces, slower).
REAL_CHECKSUMS = False


def attackers_checksum(obj) -> str:
    """The checkpoint SHA-256, recomputed the way an attacker would: it has no key, so the
    package's own public function gives a correct one (it hashes a zero-stride tensor in
    pieces, never expanding it)."""
    return state_checksum(obj)


def _write(state: dict, how: str, path: Path) -> None:
    if how == "saved":
        save_checkpoint(state, path)
    elif how == "nochecksum":
        torch.save({k: v for k, v in state.items() if k != "checksum"}, path)
    else:
        state = {k: v for k, v in state.items() if k != "checksum"}
        checksum = "0" * 64
        if REAL_CHECKSUMS:
            try:
                checksum = attackers_checksum(state)
            except RuntimeError:  # a sparse tensor: no checksum can be computed
                pass
        torch.save({**state, "checksum": checksum}, path)


def _write_case(base: dict, name: str, path: Path) -> None:
    how, mutate = CASES[name]
    state = copy.deepcopy(base)
    if how == "saved-then":  # a checksum written, then edited
        state["checksum"] = "placeholder"
        mutate(state)
        torch.save(state, path)
        return
    mutate(state)
    _write(state, how, path)


# ---------------------------------------------------------------- zip-level crafts
def _with_empty_records(src: Path, dst: Path, extra: int) -> None:
    """Copy the zip ``src`` to ``dst`` and append ``extra`` empty records."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
        prefix = zin.namelist()[0].split("/")[0]
        for i in range(extra):
            zout.writestr(f"{prefix}/pad/{i}", b"")


def write_deflated(base: dict, tmp: Path, path: Path) -> None:
    """A placeholder tensor's record replaced by ``DEFLATED_ELEMENTS`` float zeros,
    deflate-compressed, and the pickle patched to match: a file of under a
    megabyte that, read, makes a 640 MB tensor."""
    plain = tmp / "plain.pt"
    state = {k: v for k, v in copy.deepcopy(base).items() if k != "checksum"}
    # the checksum of what the file will hold once patched (an attacker can compute it)
    checksum = attackers_checksum({**state, "blob": torch.zeros(1).expand(DEFLATED_ELEMENTS)}) \
        if REAL_CHECKSUMS else "0" * 64
    torch.save({**state, "blob": torch.zeros(MARK), "checksum": checksum}, plain)
    old, new = b"J" + struct.pack("<i", MARK), b"J" + struct.pack("<i", DEFLATED_ELEMENTS)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                zout.writestr(info.filename, data.replace(old, new))
            elif info.file_size == MARK * 4:
                record = zipfile.ZipInfo(info.filename)
                record.compress_type = zipfile.ZIP_DEFLATED  # ZipFile.open("w") compresses with it
                chunk = bytes(1 << 22)
                with zout.open(record, "w") as out:
                    for _ in range(DEFLATED_ELEMENTS * 4 // len(chunk)):
                        out.write(chunk)
            else:
                zout.writestr(info.filename, data)


def write_many_records(base: dict, tmp: Path, path: Path) -> None:
    """20,000 extra empty records: ``zipfile`` would build an object for each."""
    plain = tmp / "plain_many.pt"
    save_checkpoint(copy.deepcopy(base), plain)
    _with_empty_records(plain, path, 20_000)


def write_oversized_record(base: dict, tmp: Path, path: Path) -> None:
    """A record whose directory entry claims 2 GB in a file of a few hundred kB."""
    plain = tmp / "plain_big.pt"
    save_checkpoint(copy.deepcopy(base), plain)
    data = bytearray(plain.read_bytes())
    at = data.find(b"PK\x01\x02")  # the central directory: find a tensor record's entry
    while not data[at + 46 : at + 46 + struct.unpack("<H", data[at + 28 : at + 30])[0]].endswith(b"/data/0"):
        at = data.find(b"PK\x01\x02", at + 4)
    data[at + 20 : at + 28] = struct.pack("<II", 2**31, 2**31)  # compressed and uncompressed sizes
    path.write_bytes(bytes(data))


def write_legacy(base: dict, tmp: Path, path: Path) -> None:
    """The pre-1.6 (non-zip) torch format, which allocates what the pickle declares."""
    torch.save(copy.deepcopy(base), path, _use_new_zipfile_serialization=False)


def write_big_pickle(base: dict, tmp: Path, path: Path) -> None:
    """A 9 MB pickled structure: over the limit, refused before unpickling."""
    save_checkpoint({**copy.deepcopy(base), "junk": "x" * 9_000_000}, path)


ZIP_CASES = {"deflated_record": write_deflated, "many_records": write_many_records,
             "oversized_record": write_oversized_record, "legacy_format": write_legacy,
             "big_pickle": write_big_pickle}


def write_all(base: dict, folder: Path) -> dict[str, Path]:
    """Every hostile file (and ``valid``, the untouched state) in ``folder``."""
    paths = {"valid": folder / "valid.pt"}
    save_checkpoint(copy.deepcopy(base), paths["valid"])
    for name in CASES:
        paths[name] = folder / f"{name}.pt"
        _write_case(base, name, paths[name])
    for name, write in ZIP_CASES.items():
        paths[name] = folder / f"{name}.pt"
        write(base, folder, paths[name])
    return paths


@pytest.fixture(scope="module")
def base_state():
    return trained_state()


@pytest.fixture(scope="module")
def probed(base_state, tmp_path_factory):
    paths = write_all(base_state, tmp_path_factory.mktemp("hostile"))
    proc, results = probe(list(paths.values()))
    return paths, proc, {Path(r["path"]).stem: r for r in results}


def test_every_hostile_file_is_one_checkpoint_error_and_nothing_crashes(probed):
    paths, proc, results = probed
    assert proc.returncode == 0, f"the loader died ({proc.returncode}): {proc.stderr[-2000:]}"
    assert set(results) == set(paths), f"no result for {set(paths) - set(results)}"
    assert results["valid"]["outcome"] == "trained", results["valid"]
    wrong = {name: r for name, r in results.items() if name != "valid" and r["outcome"] != "refused"}
    assert not wrong, wrong
    for name, r in results.items():  # one line, naming the file (or the checkpoint), no traceback
        if name != "valid":
            assert "\n" not in r["detail"] and r["detail"].startswith("checkpoint"), (name, r["detail"])
    assert len(results) - 1 == len(CASES) + len(ZIP_CASES) >= 90


@pytest.mark.skipif(not CAN_MEASURE_PEAK, reason="needs /proc/self/clear_refs (Linux) to measure peak memory")
def test_every_hostile_file_is_refused_in_bounded_memory(probed):
    _, _, results = probed
    peaks = {name: r["peak_mb"] for name, r in results.items()}
    assert all(p is not None and p < MEMORY_BOUND_MB for p in peaks.values()), peaks


@pytest.mark.parametrize("name, words", [
    ("opt_too_small", "optimizer state 'exp_avg' is (3,)"),
    ("zero_stride_huge", "overlapping memory"),
    ("deflated_record", "compressed record"),
    ("huge_hidden", "hidden_dim should be an integer from 1 to"),
    ("over_parameter_cap", "parameters, over this vae_course's limit"),
    ("nan_weights", "NaN or infinite weights in 'fc1.weight'"),
    ("negative_epoch", "epoch should be a whole number >= 0"),
    ("other_class_cvae", "weights do not fit the 'cvae' model"),
    ("missing_checksum", "has no checksum"),
    ("version_newer", "upgrade vae_course"),
    ("many_records", "records (a checkpoint has at most"),
    ("legacy_format", "not a zip archive"),
    ("epoch_huge", "holds an integer of about 401 digits"),
    ("opt_step_huge", "holds an integer of about 401 digits"),
    ("train_config_empty", "train_config has no 'model' setting (and 7 more)"),
    ("train_config_seed_2_64", "holds an integer of about 20 digits"),
    ("train_config_seed_2_63", "seed: must be an integer from 0 to 4294967295"),
    ("cvae_one_class", "a conditional model needs at least 2 classes"),
    ("cvae_five_classes", "conditions on its 10 classes"),
    ("unknown_field", "holds a field this vae_course does not know ('note')"),
    ("opt_weight_decay_huge", "weight_decay=1e+30 differs from 0"),
    ("opt_eps_changed", "eps=1.0 differs from 1e-08"),
    ("opt_lr_zero", "the optimizer's learning rate is 0, but train_config says lr=0.001"),
    ("opt_half_the_state_missing", "optimizer state is missing for 5 of 10 parameters"),
    ("opt_steps_too_many", "steps, more than 1 epochs"),
    ("opt_steps_differ", "parameters at different steps"),
    ("lr_schedule_disagrees", "lr_schedule says base_lr=5.0"),
])
def test_refusals_say_what_is_wrong(probed, name, words):
    assert words in probed[2][name]["detail"], probed[2][name]["detail"]


def test_a_refused_restore_leaves_the_trainer_untouched(base_state):
    from checkpoint_probe import SMALL_CONFIG
    from vae_course.train import TrainConfig, Trainer

    trainer = Trainer(config=TrainConfig(**SMALL_CONFIG), progress=False, log=None)
    before = copy.deepcopy((trainer.model.state_dict(), trainer.optimizer.state_dict(), trainer.epoch))
    # Good weights, then an optimizer state that fits every parameter but the last.
    bad = copy.deepcopy(base_state)
    last = max(bad["optimizer_state"]["state"])
    bad["optimizer_state"]["state"][last]["exp_avg"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match="does not belong to this model"):
        restore_training_state(trainer, bad)
    after = (trainer.model.state_dict(), trainer.optimizer.state_dict(), trainer.epoch)
    assert all(torch.equal(a, b) for a, b in zip(before[0].values(), after[0].values()))
    assert before[1]["state"] == {} == after[1]["state"] and before[2] == after[2] == 0
    restore_training_state(trainer, base_state)  # the good state still loads
    assert trainer.epoch == 1 and len(trainer.optimizer.state_dict()["state"]) == last + 1


@pytest.mark.parametrize("mutate", [_set("epoch", 10**400), _set("history/0/loss", 10**400),
                                    _set("train_config/lr", 10**400), _opt_state("step", lambda t: 10**400)])
def test_integers_beyond_64_bits_in_a_state_dict_are_one_checkpoint_error(base_state, mutate):
    """The same values handed over in memory (no file, so no scan): each field's own check
    says so in one line instead of an OverflowError."""
    from checkpoint_probe import SMALL_CONFIG
    from vae_course.train import TrainConfig, Trainer

    trainer = Trainer(config=TrainConfig(**SMALL_CONFIG), progress=False, log=None)
    state = copy.deepcopy(base_state)
    mutate(state)
    with pytest.raises(CheckpointError) as info:
        restore_training_state(trainer, state)
    assert "\n" not in str(info.value) and "digits" in str(info.value), str(info.value)
