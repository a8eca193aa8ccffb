"""inference: the eval-mode, batch-by-batch walk every measurement shares."""
import pytest
import torch

from vae_course.inference import batches, device_of, eval_mode
from vae_course.models import VAE


def test_batches_cover_every_image_once_in_order_with_labels():
    x, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    got = list(batches(x, y, batch_size=4))
    assert [len(xb) for xb, _ in got] == [4, 4, 2]
    torch.testing.assert_close(torch.cat([xb for xb, _ in got]), x)
    torch.testing.assert_close(torch.cat([yb for _, yb in got]), y)
    assert all(yb is None for _, yb in batches(x, None, batch_size=3))


def test_eval_mode_gives_the_model_back_in_its_mode_even_after_an_interrupt():
    model = VAE(latent_dim=2)
    assert model.training
    with pytest.raises(KeyboardInterrupt):
        with eval_mode(model):
            assert not model.training
            raise KeyboardInterrupt  # a learner's Ctrl-C in the middle of a measurement
    assert model.training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training  # a model that was in eval mode stays there
    assert device_of(model) == torch.device("cpu")
