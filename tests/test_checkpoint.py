"""Checkpoints: round trips, atomic writes, and safe, readable failures."""
from __future__ import annotations

import os
import random
import pickle
import stat
from pathlib import Path

import pytest
import torch

from vae_course.checkpoint import (
    FORMAT_VERSION, CheckpointError, epoch_of, history_of, load_checkpoint, load_weights, migrate,
    model_from_checkpoint, model_name_of, save_checkpoint, torch_version_of, train_config_of,
)
from vae_course.models import VAE, ConvVAE, build_model


def make_state(model: torch.nn.Module | None = None, epoch: int = 3, **extra):
    """A weights-only checkpoint dict (``extra`` adds or replaces fields)."""
    model = model or VAE(latent_dim=4, hidden_dim=16)
    return {
        "format_version": FORMAT_VERSION, "model_name": model.name, "model_config": dict(model.config),
        "model_state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "epoch": epoch, "history": [{"epoch": 1, "loss": 1.5}], **extra,
    }


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = VAE(latent_dim=4, hidden_dim=16)
    path = save_checkpoint(make_state(model, data_generator=torch.Generator().get_state(), torch_version="hi"),
                           tmp_path / "c.pt")
    state = load_checkpoint(path, expect_model="vae", expect_latent_dim=4)
    assert state["epoch"] == 3 and state["torch_version"] == "hi" and state["history"][0]["loss"] == 1.5
    rebuilt = model_from_checkpoint(state)
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k
    # the file loads with plain torch too, with weights_only=True
    assert "model_state" in torch.load(path, weights_only=True)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "deep" / "folder" / "c.pt"
    save_checkpoint(make_state(epoch=1), path)
    save_checkpoint(make_state(epoch=2), path)
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]
    assert load_checkpoint(path)["epoch"] == 2
    # usual permissions (not mkstemp's owner-only 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_save_keeps_the_old_file(tmp_path):
    path = save_checkpoint(make_state(epoch=1), tmp_path / "c.pt")

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError):
        save_checkpoint(make_state(epoch=2, bad=Unsaveable()), path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


class _CreatesAFile:
    """A pickle payload: unpickling it would create ``target`` (i.e. run code)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_malicious_pickle_is_refused_and_runs_no_code(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save(make_state(payload=_CreatesAFile(target)), path)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert "Nothing was executed" in str(info.value) and "io.open" in str(info.value)
    assert not target.exists()
    # the same with a plain (non-torch) pickle file
    with open(path, "wb") as f:
        pickle.dump({"x": _CreatesAFile(target)}, f)
    with pytest.raises(CheckpointError, match="nothing was executed"):
        load_checkpoint(path)
    assert not target.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.5, 0.9, 0.999])
def test_truncated_file_is_a_checkpoint_error(tmp_path, fraction):
    path = save_checkpoint(make_state(), tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match="truncated or corrupted|corrupted"):
        load_checkpoint(path)


def test_random_bytes_and_flipped_bits_are_checkpoint_errors(tmp_path):
    path = tmp_path / "c.pt"
    rng = random.Random(0)  # many fixed "random files": torch.load fails on them in many ways
    for _ in range(50):
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 5000))))
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
    reference = make_state()
    good = save_checkpoint(reference, tmp_path / "good.pt").read_bytes()
    # flip one byte at many places, including inside the tensor data: never a silent wrong load
    g = torch.Generator().manual_seed(0)
    silent = []
    for pos in torch.randint(0, len(good), (60,), generator=g).tolist():
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        path.write_bytes(bytes(bad))
        try:
            state = load_checkpoint(path)
        except CheckpointError:
            continue
        if any(not torch.equal(v, state["model_state"][k]) for k, v in reference["model_state"].items()):
            silent.append(pos)
    assert not silent


def test_missing_file_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no file"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({**make_state(), "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({**make_state(), "model_config": "latent_dim=4"}, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="model_config should be a dict"):
        load_checkpoint(tmp_path / "tampered.pt")


def test_wrong_model_or_latent_size_names_expected_and_found(tmp_path):
    path = save_checkpoint(make_state(VAE(latent_dim=4, hidden_dim=16)), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"'vae'.*'conv-vae' was expected"):
        load_checkpoint(path, expect_model="conv-vae")
    with pytest.raises(CheckpointError, match=r"latent_dim=4.*latent_dim=20 was expected"):
        load_checkpoint(path, expect_latent_dim=20)
    state = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"'vae'.*'conv-vae'"):
        load_weights(ConvVAE(latent_dim=4), state)
    with pytest.raises(CheckpointError, match=r"latent_dim.: 4.*latent_dim.: 20"):
        load_weights(VAE(latent_dim=20, hidden_dim=16), state)


def test_tampered_weights_or_model_name_are_checkpoint_errors():
    state = make_state()
    state["model_state"] = {k: v for k, v in state["model_state"].items() if not k.startswith("fc4")}
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(state)
    with pytest.raises(CheckpointError, match="cannot build"):
        model_from_checkpoint({**make_state(), "model_name": "transformer"})


@pytest.mark.parametrize("name", ["ae", "vae", "conv-vae", "cvae"])
def test_every_model_round_trips(tmp_path, name):
    model = build_model(name, latent_dim=3)
    path = save_checkpoint(make_state(model), tmp_path / f"{name}.pt")
    rebuilt = model_from_checkpoint(load_checkpoint(path, expect_model=name, expect_latent_dim=3))
    assert type(rebuilt) is type(model) and rebuilt.config == model.config


# ---------------------------------------------------------------- the format's owner (issues 14 and 16)
def test_version_1_files_are_migrated_and_newer_ones_refused(tmp_path):
    path = save_checkpoint(make_state(format_version=1), tmp_path / "v1.pt")
    state = load_checkpoint(path)
    assert state["format_version"] == FORMAT_VERSION == 2
    assert migrate(make_state(format_version=1))["format_version"] == 2
    with pytest.raises(CheckpointError, match="newer than this vae_course reads.*upgrade vae_course"):
        migrate(make_state(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="which no vae_course wrote"):
        migrate(make_state(format_version="2"))


def test_a_missing_checksum_is_an_error_that_says_how_to_add_one(tmp_path):
    torch.save(make_state(), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="has no checksum.*save_checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


def test_unreadable_places_are_not_called_corrupted(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="is a folder") as info:
        load_checkpoint(tmp_path / "run")
    assert "re-create" not in str(info.value)
    path = save_checkpoint(make_state(), tmp_path / "c.pt")
    if os.geteuid() != 0:  # root reads any file
        path.chmod(0)
        with pytest.raises(CheckpointError, match="cannot be read .*Permission denied.*not changed") as info:
            load_checkpoint(path)
        assert "corrupt" not in str(info.value)
        path.chmod(0o644)
    # damaged files: the advice keeps the file (no "re-create it")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupted") as info:
        load_checkpoint(path)
    assert "re-create" not in str(info.value) and "\n" not in str(info.value)


def test_accessors_read_the_fields_without_indexing(tmp_path):
    from dataclasses import asdict, dataclass

    from vae_course.config import TrainConfig

    @dataclass
    class Settings:
        lr: float = 1.0
        model: str = "vae"

        def validate(self):
            if not self.lr > 0.3:
                raise ValueError(f"lr: must be positive and above 0.3, got {self.lr}")

    saved = {**asdict(TrainConfig(lr=0.5)), "from_a_newer_version": 1}
    state = make_state(train_config=saved, torch_version="9.9")
    assert train_config_of(state) == saved
    assert train_config_of(state, Settings) == Settings(lr=0.5)  # unknown settings are ignored
    with pytest.raises(CheckpointError, match="train_config is not valid: lr: must be positive"):
        train_config_of(make_state(train_config=asdict(TrainConfig(lr=0.25))), Settings)  # Settings' own check
    with pytest.raises(CheckpointError, match="train_config is not valid: lr: must be a positive finite number"):
        train_config_of(make_state(train_config={**saved, "lr": -1.0}), Settings)  # TrainConfig's bounds first
    with pytest.raises(CheckpointError, match="holds weights only"):
        train_config_of(make_state())
    history = history_of(state)
    history[0]["loss"] = 0.0  # a copy: the state is unchanged
    assert state["history"][0]["loss"] == 1.5 and epoch_of(state) == 3 and model_name_of(state) == "vae"
    assert torch_version_of(state) == "9.9" and torch_version_of(make_state()) is None


def test_dense_layouts_load_but_overlapping_memory_is_refused(tmp_path):
    """channels_last weights (a conv model trained on a GPU) are dense: fine. A
    zero-stride tensor is refused before the checksum would expand it."""
    model = ConvVAE(latent_dim=3)
    weights = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
               for k, v in model.state_dict().items()}
    path = save_checkpoint(make_state(model, model_state=weights), tmp_path / "cl.pt")
    rebuilt = model_from_checkpoint(load_checkpoint(path))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))
    # (in a field that holds a tensor: an unknown field is refused before loading, see test_hostile_structure)
    torch.save({**make_state(), "data_generator": torch.zeros(1).expand(10**9), "checksum": "0" * 64},
               tmp_path / "z.pt")
    with pytest.raises(CheckpointError, match="overlapping memory"):
        load_checkpoint(tmp_path / "z.pt")


def test_model_sizes_are_bounded_before_anything_is_built():
    with pytest.raises(CheckpointError, match="hidden_dim should be an integer from 1 to 65536"):
        model_from_checkpoint({**make_state(), "model_config": {"latent_dim": 4, "hidden_dim": 10**9}})
    with pytest.raises(CheckpointError, match="parameters, over this vae_course's limit"):
        model_from_checkpoint({**make_state(), "model_config": {"latent_dim": 4, "hidden_dim": 40_000}})
    bad = make_state()
    bad["model_state"]["fc1.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or infinite weights in 'fc1.weight'"):
        model_from_checkpoint(bad)
