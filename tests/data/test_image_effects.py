"""Training-time pixel corruption: which images it touches and how much."""

from __future__ import annotations

import torch

from trimodal.data.image_effects import PixelAugment, corrupt_batch, gaussian_blur


def _images() -> torch.Tensor:
    return torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(0))


def test_nothing_changes_at_probability_zero_or_strength_zero() -> None:
    images = _images()
    generator = torch.Generator().manual_seed(1)
    assert torch.equal(corrupt_batch(images, 0.3, 2.0, 0.0, generator), images)
    assert torch.equal(corrupt_batch(images, 0.0, 0.0, 1.0, generator), images)
    assert not PixelAugment().active and PixelAugment(max_noise=0.1).active


def test_noise_touches_about_the_chosen_share_and_stays_in_range() -> None:
    images = _images().repeat(8, 1, 1, 1)  # 128 images
    out = corrupt_batch(images, 0.2, 0.0, 0.5, torch.Generator().manual_seed(2))
    changed = (out != images).flatten(1).any(1)
    assert 40 <= int(changed.sum()) <= 88
    assert out.min() >= 0 and out.max() <= 1
    assert (out - images).abs().max() < 0.2 * 6  # within six sigma of the largest noise


def test_blur_is_the_reference_blur_on_the_chosen_images() -> None:
    images = _images()
    generator = torch.Generator().manual_seed(3)
    out = corrupt_batch(images, 0.0, 2.0, 1.0, generator)
    replay = torch.Generator().manual_seed(3)
    torch.rand(len(images), generator=replay)  # the choice (all chosen at probability 1)
    sigma = float(torch.rand(1, generator=replay)) * 2.0
    assert torch.allclose(out, gaussian_blur(images, sigma))
    same = corrupt_batch(images, 0.0, 2.0, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(out, same)
