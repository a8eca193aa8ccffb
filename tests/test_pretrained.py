"""pretrained: a named model is trained once, then loaded from the cache (vae_course.pretrained)."""
from __future__ import annotations

import pytest
import torch


def test_pretrained_is_trained_once_then_cached(monkeypatch, tmp_path):
    from course_testing import data_available

    if not data_available("MNIST"):
        pytest.skip("MNIST files not found")
    from vae_course import pretrained as pt

    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path))
    folder = pt.pretrained_dir("vae-2d", limit_train=300, limit_test=100)
    assert folder.parent == tmp_path / "pretrained" and folder.name.startswith("vae-2d-")
    model = pt.pretrained("vae-2d", verbose=False, limit_train=300, limit_test=100)
    assert model.latent_dim == 2 and not model.training
    assert (folder / "checkpoint.pt").is_file()
    monkeypatch.setattr(pt.Trainer, "fit", lambda self: pytest.fail("retrained a cached model"))
    again = pt.pretrained("vae-2d", verbose=False, limit_train=300, limit_test=100)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert len(pt.pretrained_history("vae-2d", limit_train=300, limit_test=100)) == 1
    # a different setting is a different cache entry; smoke and full mode never share one
    assert pt.pretrained_dir("vae-2d", limit_train=301, limit_test=100) != folder
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    assert pt.pretrained_dir("vae-2d", limit_train=300, limit_test=100) != folder
    with pytest.raises(ValueError, match="name"):
        pt.pretrained("gan")
