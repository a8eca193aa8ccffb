"""config: one resume policy and one set of defaults for the training settings (vae_course.config)."""
from __future__ import annotations

import sys

import pytest

from vae_course.config import TrainConfig, default_config, recommended_settings, resumed_config
from vae_course.train import Trainer


# ---------------------------------------------------------------- one resume policy, one set of defaults
def _config_with_a_new_field(on_resume="fixed", affects_weights=True):
    """TrainConfig plus a setting the package has never heard of, declared like the others."""
    import dataclasses

    new = dataclasses.field(default=0.0, metadata={"on_resume": on_resume, "affects_weights": affects_weights})
    return dataclasses.make_dataclass("ConfigPlus", [("dropout", float, new)], bases=(TrainConfig,))


def test_a_new_config_field_gets_the_resume_policy_with_no_edits_elsewhere(tmp_path, tiny_data, monkeypatch):
    vt = sys.modules["vae_course.train"]
    monkeypatch.setattr(vt, "load_data", lambda *a, **k: tiny_data)  # resume reloads "the dataset"
    ConfigPlus = _config_with_a_new_field()
    Trainer(config=ConfigPlus(epochs=1, device="cpu", dropout=0.1), data=tiny_data, out_dir=tmp_path,
            progress=False, log=None).fit()
    with pytest.raises(ValueError, match=r"--dropout 0.3 \(checkpoint has 0.1\)"):
        Trainer.resume(tmp_path, config_class=ConfigPlus, dropout=0.3, progress=False, log=None)
    same = Trainer.resume(tmp_path, config_class=ConfigPlus, dropout=0.1, epochs=2, progress=False, log=None)
    assert same.config.dropout == 0.1 and same.config.epochs == 2
    Free = _config_with_a_new_field(on_resume="free")
    free = Trainer.resume(tmp_path, config_class=Free, dropout=0.3, progress=False, log=None)
    assert free.config.dropout == 0.3


def test_a_new_config_field_enters_the_pretrained_cache_key_by_its_metadata():
    from vae_course.pretrained import config_key

    Plus = _config_with_a_new_field()
    assert config_key(Plus(dropout=0.2)) != config_key(Plus())
    assert config_key(Plus()) == config_key(TrainConfig())  # a default value changes no key
    NoEffect = _config_with_a_new_field(affects_weights=False)
    assert config_key(NoEffect(dropout=0.2)) == config_key(NoEffect())
    assert config_key(TrainConfig(device="cpu", log_every=7)) == config_key(TrainConfig())


@pytest.mark.parametrize("settings, given, error", [
    ({}, {"model": "cvae"}, "--model cvae (checkpoint has vae)"),
    ({"lr_schedule": "cosine", "lr": 5e-3}, {"lr": 1e-4}, "--lr 0.0001 (checkpoint has 0.005)"),
    ({}, {"epochs": 0}, "epochs: must be an integer from 1 to 10000, got 0"),
    ({"epochs": 2}, {"epochs": 1}, "--epochs 1: the checkpoint already has 2 epochs"),
    ({}, {"learning_rate": 1}, "learning_rate: not a training setting"),
])
def test_resumed_config_enforces_the_policy(settings, given, error):
    with pytest.raises(ValueError) as info:
        resumed_config(TrainConfig(**settings), given, done_epochs=2)
    assert error in str(info.value)
    changed = resumed_config(TrainConfig(), {"lr": 1e-4, "device": "cpu", "epochs": 20, "model": "vae"})
    assert (changed.lr, changed.device, changed.epochs) == (1e-4, "cpu", 20)


def test_one_set_of_defaults():
    from vae_course.pretrained import pretrained_config

    assert default_config() == TrainConfig(**recommended_settings("vae"))  # the tuned recipe for the seed's VAE
    assert default_config(model="conv-vae") == TrainConfig(model="conv-vae")  # no recipe: TrainConfig's own
    # the recipe is a bundle: any of its settings given, and none of it applies
    assert default_config(lr=2e-3) == TrainConfig(lr=2e-3)
    # pretrained models keep the canonical settings they were written with, explicitly
    config = pretrained_config("vae-mnist")
    assert (config.lr, config.lr_schedule, config.batch_size) == (1e-3, "constant", 128)
    with pytest.raises(ValueError, match="learning_rate: not a training setting"):
        default_config(learning_rate=1)


def test_recommended_settings_are_valid_config_values():
    from dataclasses import fields

    rec = recommended_settings("vae")
    assert rec == {"lr": 5e-3, "lr_schedule": "cosine", "batch_size": 128}
    assert recommended_settings("conv-vae") == {}
    names = {f.name for f in fields(TrainConfig)}
    assert set(rec) <= names
    TrainConfig(**rec).validate()
    rec["lr"] = 1.0  # a fresh copy: changing it changes nothing for the next caller
    assert recommended_settings("vae")["lr"] == 5e-3
    with pytest.raises(TypeError):
        recommended_settings(None)
