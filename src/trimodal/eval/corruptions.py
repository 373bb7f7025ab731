"""Input corruptions for the robustness curves of the evaluation harness.

One small, pure function per corruption and modality: Gaussian noise, Gaussian blur and FGSM for
images in pixel space ``[0, 1]``; character-level typos for text. (Waveform noise at an exact
signal-to-noise ratio lives in :mod:`trimodal.data.audio_effects`, shared with the world.) Every random choice comes from a generator passed in
(``torch.Generator`` for images, ``numpy.random.Generator`` for audio and text), so a corruption at
a given severity and seed is reproducible, and no function modifies its inputs. Severity 0 (``sigma
= 0``, ``rate = 0``, ``epsilon = 0``) always returns an unchanged copy, which anchors each curve.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import numpy as np
import torch

from trimodal.data.image_effects import gaussian_blur, gaussian_noise

__all__ = ["fgsm", "gaussian_blur", "gaussian_noise", "typos"]

_LOWERCASE = string.ascii_lowercase
_TYPO_KINDS = ("delete", "substitute", "insert", "swap")


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
