"""Shipped weights: fp16 files with a checksummed manifest, loaded by pretrained().

A tiny VAE is trained here (real MNIST, one short epoch), shipped with
scripts/ship_weights.py into a private folder, and loaded back through the same
code the package uses for its own shipped weights.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_testing import ROOT, cli_env, needs_mnist
from vae_course.checkpoint import load_checkpoint, save_checkpoint
from vae_course.pretrained import PRETRAINED, pretrained
from vae_course.weights import (WEIGHTS_DIR, ShippedWeightsError, load_shipped, read_manifest, sha256_of,
                                shipped_model)

SCRIPT = ROOT / "scripts" / "ship_weights.py"
NAME = "tiny-test-vae"  # not one of PRETRAINED's names: pretrained() cannot train it


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from vae_course.train import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("tiny")
    config = TrainConfig(model="vae", latent_dim=4, hidden_dim=64, epochs=1, limit_train=512, limit_test=200)
    Trainer(config=config, out_dir=out, log=None, progress=False).fit()
    return out / "checkpoint.pt"


def ship(checkpoint: Path, folder: Path, name: str = NAME) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), name, str(checkpoint), "--train-command",
                           "python -m vae_course train --latent-dim 4 (test)", "--limit-test", "200",
                           "--dir", str(folder)], capture_output=True, text=True, env=cli_env(), timeout=300)


@pytest.fixture(scope="module")
def shipped(checkpoint: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    proc = ship(checkpoint, folder)
    assert proc.returncode == 0, proc.stderr
    assert f"shipped {NAME}" in proc.stdout and "(fp32) =" in proc.stdout
    return folder


pytestmark = needs_mnist


def test_the_manifest_entry_records_file_checksum_and_provenance(shipped: Path, checkpoint: Path):
    entry = read_manifest(shipped)[NAME]
    state = load_checkpoint(checkpoint)
    assert entry["file"] == f"{NAME}.fp16.pth" and entry["dtype"] == "float16"
    assert entry["sha256"] == sha256_of(shipped / entry["file"])
    assert entry["config"] == state["train_config"] and entry["model_config"] == state["model_config"]
    assert entry["train_command"].startswith("python -m vae_course train") and entry["epochs"] == 1
    assert entry["history"] == state["history"]
    assert round(entry["test_elbo"]["fp32"], 2) == round(entry["test_elbo"]["shipped"], 2) \
        or abs(entry["test_elbo"]["fp32"] - entry["test_elbo"]["shipped"]) < 0.005
    fp32_bytes = sum(v.numel() * v.element_size() for v in state["model_state"].values())
    assert (shipped / entry["file"]).stat().st_size < 0.6 * fp32_bytes, "fp16 storage should halve the file"


def test_load_shipped_gives_float32_tensors_equal_to_the_fp16_copy(shipped: Path, checkpoint: Path):
    loaded = load_shipped(NAME, shipped)
    original = load_checkpoint(checkpoint)["model_state"]
    assert loaded.keys() == original.keys()
    for key, value in loaded.items():
        assert value.dtype == torch.float32
        assert torch.equal(value, original[key].half().float()), key
    assert load_shipped("no-such-model", shipped) is None


def test_a_flipped_byte_is_refused_in_one_line(shipped: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "weights"
    shutil.copytree(shipped, copy)
    path = copy / read_manifest(copy)[NAME]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ShippedWeightsError) as info:
        load_shipped(NAME, copy)
    message = str(info.value)
    assert "SHA-256" in message and "VAE_COURSE_RETRAIN=1" in message and "\n" not in message
    path.unlink()
    with pytest.raises(ShippedWeightsError, match="missing"):
        load_shipped(NAME, copy)


def test_pretrained_uses_shipped_weights_unless_retrain_is_set(shipped: Path, monkeypatch):
    monkeypatch.setenv("VAE_COURSE_WEIGHTS", str(shipped))
    model = pretrained(NAME)
    assert not model.training
    loaded = load_shipped(NAME, shipped)
    assert all(torch.equal(v, loaded[k]) for k, v in model.state_dict().items())
    monkeypatch.setenv("VAE_COURSE_RETRAIN", "1")
    assert shipped_model(NAME) is None
    with pytest.raises(ValueError, match="unknown pretrained model"):  # it would train, and cannot: unknown
        pretrained(NAME)


def test_weights_trained_with_other_settings_are_not_used(shipped: Path, tmp_path: Path, monkeypatch, capsys):
    """An entry named like a pretrained model but trained otherwise is skipped, with one line."""
    manifest = read_manifest(shipped)
    other = tmp_path / "weights"
    other.mkdir()
    (other / manifest[NAME]["file"]).write_bytes((shipped / manifest[NAME]["file"]).read_bytes())
    (other / "manifest.json").write_text(json.dumps({"vae-mnist": manifest[NAME]}))
    assert "vae-mnist" in PRETRAINED
    monkeypatch.setenv("VAE_COURSE_WEIGHTS", str(other))
    with pytest.raises(Exception):  # pretrained() skips the copy and trains: stop it at once
        monkeypatch.setenv("VAE_COURSE_DATA", str(tmp_path / "no-data"))
        monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
        pretrained("vae-mnist", verbose=False)
    assert "other settings" in capsys.readouterr().out
    expected = {**manifest[NAME]["config"], "epochs": manifest[NAME]["config"]["epochs"] + 1}
    assert shipped_model("vae-mnist", other, expected=expected) is None
    assert shipped_model("vae-mnist", other, expected=manifest[NAME]["config"]) is not None


def test_ship_refuses_weights_whose_fp16_copy_changes_the_elbo(checkpoint: Path, tmp_path: Path):
    """Logits near 1000 lose 0.25 in fp16: the guard sees the ELBO move and ships nothing."""
    state = load_checkpoint(checkpoint)
    last_bias = [k for k in state["model_state"] if k.endswith("bias")][-1]
    state["model_state"][last_bias] = state["model_state"][last_bias] - 1000.3
    bad = save_checkpoint(state, tmp_path / "bad" / "checkpoint.pt")
    folder = tmp_path / "weights"
    proc = ship(bad, folder)
    assert proc.returncode != 0 and "changes the test ELBO" in proc.stderr
    assert NAME not in read_manifest(folder) and not list(folder.glob("*.pth"))


def test_every_weight_the_package_ships_matches_its_manifest():
    manifest = read_manifest(WEIGHTS_DIR)
    for name, entry in manifest.items():
        path = WEIGHTS_DIR / entry["file"]
        assert path.is_file(), f"{name}: {path} is listed but missing"
        assert sha256_of(path) == entry["sha256"], f"{name}: {path} does not match its SHA-256"
        assert {"dtype", "model_name", "model_config", "config", "train_command"} <= entry.keys()
    listed = {entry["file"] for entry in manifest.values()}
    assert not [p.name for p in WEIGHTS_DIR.glob("*.pth") if p.name not in listed], "unlisted weight files"


def test_every_shipped_pretrained_model_is_used_as_the_package_would_train_it(capsys):
    """Each shipped copy of a pretrained model matches the configuration pretrained() would train
    with today, so it is used, not retrained (a setting added later counts at its default)."""
    from vae_course.pretrained import _shipped_config

    for name in read_manifest(WEIGHTS_DIR):
        if name in PRETRAINED:
            assert shipped_model(name, expected=_shipped_config(name)) is not None, name
    assert "other settings" not in capsys.readouterr().out


def test_a_setting_newer_than_the_manifest_counts_at_its_default(shipped: Path):
    entry = read_manifest(shipped)[NAME]
    old = {k: v for k, v in entry["config"].items() if k != "beta"}  # as if written before beta existed
    assert shipped_model(NAME, shipped, expected={**old, "beta": 1.0}) is not None or entry["config"]["beta"] != 1.0
