"""Image effects shared by training-time augmentation and the harness's robustness curves:
pixel-wise Gaussian noise and a separable Gaussian blur, on float images in pixel space
``[0, 1]``, plus :func:`corrupt_batch`, which applies them at random strengths to part of a
training batch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add pixel-wise Gaussian noise ``N(0, sigma^2)`` and clamp back to ``[0, 1]``.

    Args:
        images: float images ``[B, 3, S, S]`` in pixel space ``[0, 1]``.
        sigma: noise standard deviation in pixel units; ``0`` returns an identical copy.
        generator: draws the noise; must live on ``images.device``.

    Returns:
        noisy images ``[B, 3, S, S]``, same dtype and device.
    """
    if sigma < 0:
        raise ValueError(f"gaussian_noise: sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return images.clone()
    noise = torch.randn(
        images.shape, generator=generator, dtype=images.dtype, device=images.device
    )  # (B, 3, S, S)
    return (images + sigma * noise).clamp(0.0, 1.0)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalized 1-D Gaussian kernel ``[2r + 1]`` with radius ``r = ceil(3 * sigma)``, float64."""
    radius = math.ceil(3.0 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device="cpu")
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def mirror_indices(size: int, radius: int) -> torch.Tensor:
    """Source index ``[size + 2 * radius]`` of each position of a mirror-padded axis.

    Mirror padding reflects about the edge sample without repeating it (``d c b | a b c d | c b a``),
    i.e. torch's ``"reflect"`` padding. Unlike ``F.pad`` it keeps reflecting when ``radius >= size``.
    """
    positions = torch.arange(-radius, size + radius, device="cpu")
    if size == 1:
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    positions = positions.remainder(period)
    return torch.where(positions >= size, period - positions, positions)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with kernel radius ``ceil(3 * sigma)`` and mirror ("reflect") edges.

    The edge mode is torch's ``"reflect"`` padding (``d c b | a b c d``, the edge pixel is not
    repeated), which is scipy.ndimage's ``mode="mirror"``; scipy's ``mode="reflect"`` repeats the
    edge pixel (``c b a | a b c d``) and is a different filter. It equals
    ``scipy.ndimage.gaussian_filter(channel, sigma, mode="mirror", radius=ceil(3 * sigma))``.

    Args:
        images: float images ``[B, C, H, W]`` (usually ``[B, 3, S, S]`` in ``[0, 1]``).
        sigma: standard deviation of the kernel in pixels; ``0`` returns an identical copy.

    Returns:
        blurred images ``[B, C, H, W]``, same dtype and device.
    """
    if sigma < 0:
        raise ValueError(f"gaussian_blur: sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return images.clone()
    channels, height, width = images.shape[1:]
    kernel = gaussian_kernel1d(sigma).to(dtype=images.dtype, device=images.device)  # (K,)
    radius = (len(kernel) - 1) // 2
    rows = mirror_indices(height, radius).to(images.device)
    cols = mirror_indices(width, radius).to(images.device)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)  # (C, 1, K, 1)
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)  # (C, 1, 1, K)
    blurred = F.conv2d(images.index_select(2, rows), vertical, groups=channels)  # (B, C, H, W+)
    blurred = F.conv2d(blurred.index_select(3, cols), horizontal, groups=channels)  # (B, C, H, W)
    return blurred


@dataclass(frozen=True)
class PixelAugment:
    """Training-time pixel corruption (``data.augment_noise``, ``data.augment_blur``,
    ``data.augment_probability``): see :func:`corrupt_batch`."""

    max_noise: float = 0.0
    max_blur: float = 0.0
    probability: float = 0.5
    noise_views: int = 0
    """0: fresh noise every call; ``K``: each image's noise is one of its ``K`` fixed views
    (:func:`fixed_view_noise`)."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return corrupt_batch(
            images, self.max_noise, self.max_blur, self.probability, generator, self.noise_views
        )

    @property
    def active(self) -> bool:
        """True when it changes anything."""
        return self.probability > 0 and (self.max_noise > 0 or self.max_blur > 0)


def fixed_view_noise(images: torch.Tensor, views: torch.Tensor, max_noise: float) -> torch.Tensor:
    """Noise ``[B, 3, S, S]`` (on the CPU) of view ``views[b]`` of each image: its sigma in
    ``[0, max_noise]`` and its pattern drawn from a generator seeded by the image's bytes and
    the view, so the same image and view always get the same noise."""
    host = images.detach().float().cpu().contiguous()
    noise = torch.empty(host.shape, dtype=images.dtype, device="cpu")
    for row, (pixels, view) in enumerate(zip(host, views.tolist(), strict=True)):
        digest = hashlib.blake2b(
            pixels.numpy().tobytes(), digest_size=8, salt=view.to_bytes(16, "little")
        )
        draws = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
        sigma = float(torch.rand(1, generator=draws)) * max_noise
        noise[row] = sigma * torch.randn(pixels.shape, generator=draws, dtype=images.dtype)
    return noise


def corrupt_batch(
    images: torch.Tensor,
    max_noise: float,
    max_blur: float,
    probability: float,
    generator: torch.Generator,
    noise_views: int = 0,
) -> torch.Tensor:
    """Training-time augmentation of ``images [B, 3, S, S]`` in ``[0, 1]``: each image, with
    ``probability``, gets Gaussian noise of a sigma drawn in ``[0, max_noise]`` (fresh, or with
    ``noise_views`` one of the image's fixed views, :func:`fixed_view_noise`); a second draw
    picks images to blur with one sigma drawn in ``[0, max_blur]`` for the step."""
    out = images
    if max_noise > 0:
        # Drawn on the CPU with the step's CPU generator (the same draws on every device).
        chosen = torch.rand(len(images), generator=generator, device="cpu") < probability
        if noise_views > 0:
            views = torch.randint(noise_views, (len(images),), generator=generator)
            scaled = torch.zeros(images.shape, dtype=images.dtype, device="cpu")
            scaled[chosen] = fixed_view_noise(
                images[chosen.to(images.device)], views[chosen], max_noise
            )
        else:
            sigma = torch.rand(len(images), generator=generator, device="cpu") * max_noise * chosen
            noise = torch.randn(images.shape, generator=generator, dtype=images.dtype, device="cpu")
            scaled = sigma.view(-1, 1, 1, 1).to(images.dtype) * noise
        out = (out + scaled.to(images.device)).clamp(0.0, 1.0)
    if max_blur > 0:
        chosen = torch.rand(len(images), generator=generator, device="cpu") < probability
        chosen = chosen.to(images.device)
        sigma_blur = float(torch.rand(1, generator=generator, device="cpu")) * max_blur
        if bool(chosen.any()) and sigma_blur > 0.05:
            out = out.clone()
            out[chosen] = gaussian_blur(out[chosen], sigma_blur)
    return out
