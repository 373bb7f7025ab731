"""Where the model looks: Grad-CAM over the image for a question, as heat maps and overlays.

Grad-CAM (Selvaraju et al. 2017) on the image encoder's output tokens: each channel is weighted
by the mean gradient of the chosen answer's score over tokens, the weighted channels are summed
per token and rectified, and the token grid is upsampled to the image. It needs no attention
weights, so it works with every fusion module (SDPA never materializes them).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import TokenSequence


def grad_cam_weights(tokens: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM relevance per token ``[T]`` from tokens and their gradients ``[T, D]``.

    ``relu(sum_d mean_t(grad[t, d]) * tokens[t, d])``, scaled to a maximum of 1; where that is
    zero everywhere, token-wise gradient x input ``relu(sum_d grad[t, d] * tokens[t, d])``
    (all zeros stay zeros).
    """
    channel_weights = gradients.mean(dim=0)  # (D,)
    cam = torch.relu(tokens @ channel_weights)  # (T,)
    if float(cam.max()) <= 0:
        # Every token's weighted sum is negative (common after attention mixes the grid): fall
        # back to token-wise gradient x input, which keeps per-token evidence.
        cam = torch.relu((tokens * gradients).sum(dim=1))
    peak = cam.max()
    return cam / peak if float(peak) > 0 else cam


def upsample_grid(cam: torch.Tensor, size: int) -> torch.Tensor:
    """Token relevance ``[T]`` (a square grid) -> bilinear heat map ``[size, size]`` in [0, 1]."""
    grid = math.isqrt(cam.numel())
    if grid * grid != cam.numel():
        raise ValueError(f"{cam.numel()} image tokens do not form a square grid")
    image = cam.reshape(1, 1, grid, grid)
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def question_grad_cam(
    model: TriModalModel, image: torch.Tensor, question: TokenSequence, modality: str
) -> tuple[int, torch.Tensor]:
    """Answer a question about one image and explain it with Grad-CAM.

    Args:
        image: normalized ``[3, S, S]``.
        question: the encoded question, batch of one (``text`` or ``audio`` tokens).
        modality: ``"text"`` or ``"audio"``.

    Returns:
        (predicted answer index, heat map ``[S, S]`` in [0, 1]).
    """
    with torch.enable_grad():
        encoded = model.encode("image", image.unsqueeze(0))
        tokens = encoded.tokens.detach().requires_grad_(True)  # (1, T, D)
        context = model.image_context(EncoderOutput(tokens, encoded.mask, encoded.pooled))
        logits = model.answer_logits({"image": context, modality: question})[0]
        answer = int(logits.argmax())
        (gradients,) = torch.autograd.grad(logits[answer], tokens)
    cam = grad_cam_weights(tokens[0].detach(), gradients[0])
    return answer, upsample_grid(cam, image.shape[-1])


def draw_overlay(axis: Any, pixels: np.ndarray, heat: torch.Tensor, title: str = "") -> None:
    """Draw the image ``[S, S, 3]`` uint8 with the heat map ``[S, S]`` over it on a matplotlib axis."""
    axis.imshow(pixels)
    colored = pyplot().get_cmap("jet")(heat.numpy())  # (S, S, 4)
    colored[..., 3] = 0.6 * heat.numpy()  # opaque where relevant, clear elsewhere
    axis.imshow(colored)
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=7)


def save_overlay(pixels: np.ndarray, heat: torch.Tensor, path: Path, title: str = "") -> Path:
    """Write :func:`draw_overlay` as a PNG (atomically: temp file + rename)."""
    figure = pyplot().figure(figsize=(2.4, 2.6), dpi=100)
    draw_overlay(figure.add_subplot(), pixels, heat, title)
    save_figure(figure, path)
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, bbox_inches="tight", format="png")
    pyplot().close(figure)
    os.replace(temporary, path)
