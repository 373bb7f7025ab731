"""Input corruptions for the robustness curves of the evaluation harness.

One small, pure function per corruption and modality: Gaussian noise, Gaussian blur and FGSM for
images in pixel space ``[0, 1]``; character-level typos for text. (Pixel noise, blur, typos and
waveform noise live in ``trimodal.data``'s effect modules, shared with training and the world.)
Every random choice comes from a generator passed in
(``torch.Generator`` for images, ``numpy.random.Generator`` for audio and text), so a corruption at
a given severity and seed is reproducible, and no function modifies its inputs. Severity 0 (``sigma
= 0``, ``rate = 0``, ``epsilon = 0``) always returns an unchanged copy, which anchors each curve.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trimodal.data.image_effects import gaussian_blur, gaussian_noise
from trimodal.data.text_effects import typos

__all__ = ["fgsm", "gaussian_blur", "gaussian_noise", "typos"]


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
