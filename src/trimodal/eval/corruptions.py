"""Input corruptions for the robustness curves of the evaluation harness.

One small, pure function per corruption and modality: Gaussian noise, Gaussian blur and FGSM for
images in pixel space ``[0, 1]``; character-level typos for text. (Waveform noise at an exact
signal-to-noise ratio lives in :mod:`trimodal.data.audio_effects`, shared with the world.) Every random choice comes from a generator passed in
(``torch.Generator`` for images, ``numpy.random.Generator`` for audio and text), so a corruption at
a given severity and seed is reproducible, and no function modifies its inputs. Severity 0 (``sigma
= 0``, ``rate = 0``, ``epsilon = 0``) always returns an unchanged copy, which anchors each curve.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

_LOWERCASE = string.ascii_lowercase
_TYPO_KINDS = ("delete", "substitute", "insert", "swap")


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
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def mirror_indices(size: int, radius: int) -> torch.Tensor:
    """Source index ``[size + 2 * radius]`` of each position of a mirror-padded axis.

    Mirror padding reflects about the edge sample without repeating it (``d c b | a b c d | c b a``),
    i.e. torch's ``"reflect"`` padding. Unlike ``F.pad`` it keeps reflecting when ``radius >= size``.
    """
    positions = torch.arange(-radius, size + radius)
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


def fgsm(
    images: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], epsilon: float
) -> torch.Tensor:
    """Fast gradient sign method: ``clamp(x + epsilon * sign(grad_x loss_fn(x)), 0, 1)``.

    Gradients are enabled inside even when called under ``torch.no_grad()``; only the gradient with
    respect to the images is computed, so no parameter's ``.grad`` is touched.

    Args:
        images: float images ``[B, 3, S, S]`` in pixel space ``[0, 1]``; left unchanged.
        loss_fn: maps images ``[B, 3, S, S]`` to the scalar loss ``[]`` the attack increases.
        epsilon: L-infinity step size in pixel units; ``0`` returns an unchanged copy.

    Returns:
        detached adversarial images ``[B, 3, S, S]``.
    """
    if epsilon < 0:
        raise ValueError(f"fgsm: epsilon must be >= 0, got {epsilon}")
    inputs = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(inputs)
        if loss.ndim != 0:
            raise ValueError(
                f"fgsm: loss_fn must return a scalar, got shape {tuple(loss.shape)}; "
                "reduce it (e.g. .mean()) inside loss_fn"
            )
        (gradient,) = torch.autograd.grad(loss, inputs)
    return (images.detach() + epsilon * gradient.sign()).clamp(0.0, 1.0)


def _random_letter(generator: np.random.Generator, excluded: str) -> str:
    """A random lowercase letter not in ``excluded`` (compared case-insensitively)."""
    allowed = [letter for letter in _LOWERCASE if letter not in excluded.lower()]
    return allowed[int(generator.integers(len(allowed)))]


def _typo(text: str, index: int, generator: np.random.Generator) -> tuple[str, int]:
    """Corrupt the letter ``text[index]``; return the replacement text and characters consumed.

    Every typo changes the text locally: substitutes and insertions differ from the letter (an
    insertion also from the character after it), and a swap needs a different letter next.
    """
    letter = text[index]
    following = text[index + 1] if index + 1 < len(text) else ""
    can_swap = following.isalpha() and following != letter
    kinds = _TYPO_KINDS if can_swap else _TYPO_KINDS[:3]
    kind = kinds[int(generator.integers(len(kinds)))]
    if kind == "delete":
        return "", 1
    if kind == "substitute":
        return _random_letter(generator, letter), 1
    if kind == "insert":
        return letter + _random_letter(generator, letter + following), 1
    return following + letter, 2


def typos(text: str, rate: float, generator: np.random.Generator) -> str:
    """Character-level typos: each letter independently, with probability ``rate``, gets one typo.

    A typo is chosen uniformly among: delete the letter; substitute a random lowercase letter
    different from it; insert a random letter after it; swap it with the next character when that
    is a different letter. A letter moved by a swap is part of that typo and gets no draw of its
    own. Non-letters (spaces, digits, punctuation) are never touched, so words stay aligned. Because
    each typo changes its word in a way later typos cannot undo, ``rate = 1`` changes every word
    that has a letter.

    Args:
        text: the clean text.
        rate: probability per letter, in ``[0, 1]``; ``0`` returns ``text`` unchanged.
        generator: draws which letters get typos and which typos.

    Returns:
        the corrupted text.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"typos: rate must be in [0, 1], got {rate}")
    if rate == 0.0:
        return text
    pieces: list[str] = []
    index = 0
    while index < len(text):
        if text[index].isalpha() and generator.random() < rate:
            piece, consumed = _typo(text, index, generator)
        else:
            piece, consumed = text[index], 1
        pieces.append(piece)
        index += consumed
    return "".join(pieces)
