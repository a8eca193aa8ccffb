"""interpolation: straight and spherical paths between two latent codes (notebook 7)."""
import torch

from vae_course import interpolation


def test_slerp_keeps_the_norm_of_equal_norm_codes():
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(20, generator=g), torch.randn(20, generator=g)
    z1 = z1 / z1.norm() * z0.norm()
    path = interpolation.slerp(z0, z1, torch.linspace(0, 1, 9))
    torch.testing.assert_close(path.norm(dim=1), torch.full((9,), z0.norm().item()))
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)


def test_lerp_dips_towards_the_origin_and_slerp_does_not():
    g = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(50, generator=g), torch.randn(50, generator=g)
    z1 = z1 / z1.norm() * z0.norm()
    mid_lerp = interpolation.path(z0, z1, steps=3)[1]
    mid_slerp = interpolation.path(z0, z1, steps=3, spherical=True)[1]
    assert mid_lerp.norm() < 0.8 * z0.norm()  # nearly orthogonal codes: the midpoint's norm is ~ 1/sqrt(2)
    torch.testing.assert_close(mid_slerp.norm(), z0.norm())


def test_parallel_codes_fall_back_to_the_straight_line():
    z0 = torch.tensor([1.0, 2.0, 3.0])
    t = torch.linspace(0, 1, 4)
    torch.testing.assert_close(interpolation.slerp(z0, 2 * z0, t), interpolation.lerp(z0, 2 * z0, t))
    assert torch.isfinite(interpolation.slerp(z0, z0, t)).all()
