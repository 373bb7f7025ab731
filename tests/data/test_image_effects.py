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


def test_fixed_noise_views_repeat_per_image_and_view() -> None:
    """With ``noise_views`` an image's noise is one of its own fixed draws: the same image and
    view give the same noise (whatever the batch), another view or image another, and the
    sigma stays within the maximum."""
    from trimodal.data.image_effects import corrupt_batch, fixed_view_noise

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 16, 16, generator=generator)
    first = fixed_view_noise(images, torch.tensor([0, 0, 1]), 0.1)
    again = fixed_view_noise(images[[2, 0]], torch.tensor([1, 0]), 0.1)
    assert torch.equal(again[0], first[2]) and torch.equal(again[1], first[0])
    other_view = fixed_view_noise(images[:1], torch.tensor([1]), 0.1)
    assert not torch.equal(other_view[0], first[0])
    assert not torch.equal(first[0], first[1])  # another image, another draw
    assert all(0 < float(row.std()) < 0.1 * 1.2 for row in first)
    views = [
        corrupt_batch(images, 0.1, 0.0, 1.0, torch.Generator().manual_seed(s), noise_views=2)
        for s in range(8)
    ]
    distinct = {tuple(v[0].flatten()[:4].tolist()) for v in views}
    assert len(distinct) == 2  # image 0 only ever shows its two views
    clean = corrupt_batch(images, 0.1, 0.0, 0.0, torch.Generator().manual_seed(0), noise_views=2)
    assert torch.equal(clean, images)  # probability 0: untouched
