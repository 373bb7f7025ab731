"""Video-only loss from scene graphs: what is under each video token, and which way it moves.

The image tower learns shapes from dense per-token targets (:func:`object_loss`); a clip's
tokens get the same, one grid per time step, with the objects moved along their paths to that
step, plus a fifth target: the covering object's motion. A question about the red circle's
motion then only has to find the red-circle tokens and read their motion, as a still question
finds the star's tokens and reads their colour.
"""

from __future__ import annotations

import torch

from trimodal.losses.scene import dense_cross_entropy, object_grid_targets
from trimodal.losses.step import StepInputs, zero_loss
from trimodal.modules.encoders.video import VideoEncoder
from trimodal.world.motion import MOTION_CLASSES, motion_offsets


def step_fractions(frames: int, tubelet: int) -> torch.Tensor:
    """How far along the clip each token time step is, ``[frames / tubelet]`` in 0..1.

    Frames are sampled evenly over the clip, first and last kept (frame ``k`` of ``frames`` sits
    at ``k / (frames - 1)``); a tubelet sits at the mean of its frames.
    """
    along = torch.arange(frames, dtype=torch.float32, device="cpu") / max(1, frames - 1)
    return along.reshape(frames // tubelet, tubelet).mean(1)


def moved_boxes(
    boxes: torch.Tensor, motions: torch.Tensor, fractions: torch.Tensor
) -> torch.Tensor:
    """Objects' boxes at each time step: ``boxes [B, K, 3]`` (centre ``x, y``, radius at the
    clip's start), ``motions [B, K]`` (index into :data:`MOTION_CLASSES`, -1: unknown, kept
    still) and ``fractions [S]`` -> ``[B, S, K, 3]``."""
    offsets = torch.tensor(motion_offsets(), dtype=boxes.dtype, device=boxes.device)  # (M, 2)
    path = offsets[motions.clamp(min=0)] * (motions >= 0).unsqueeze(-1)  # (B, K, 2)
    shift = fractions.to(boxes.device)[None, :, None, None] * path[:, None]  # (B, S, K, 2)
    centres = boxes[:, None, :, :2] + shift
    radius = boxes[:, None, :, 2:].expand(-1, len(fractions), -1, -1)
    return torch.cat([centres, radius], dim=-1)


def video_object_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    motions: torch.Tensor,
    fractions: torch.Tensor,
    grid: int,
    background: list[int],
) -> torch.Tensor:
    """Dense targets of a clip's ``S x grid x grid`` tokens (time-major), ``[B, 4, S * grid *
    grid]``: colour, shape, size (as :func:`object_grid_targets`) and motion of the object
    covering each token's cell at that step.

    Args:
        boxes, labels, motions: ``[B, K, 3]``, ``[B, K, 3]``, ``[B, K]`` as in scene tensors.
        fractions: ``[S]`` each step's place along the clip (:func:`step_fractions`).
        background: the "no object" class of colour, shape, size and motion.
    """
    at_step = moved_boxes(boxes, motions, fractions)  # (B, S, K, 3)
    groups = torch.cat([labels, motions.unsqueeze(-1)], dim=-1)  # (B, K, 4)
    per_step = [
        object_grid_targets(at_step[:, s], groups, grid, background) for s in range(len(fractions))
    ]
    return torch.cat(per_step, dim=-1)


def video_object_loss(step: StepInputs) -> torch.Tensor:
    """Per-token cross-entropy of the object under each video token (colour, shape, size) and
    of its motion. Rows without a clip or without placed objects and recorded motions are
    skipped. Colour, shape and size share the image tokens' object head, so video and image
    tokens name objects alike; motion has the video encoder's own head."""
    model, tensors, rows = step.model, step.tensors, step.rows
    motions = tensors.object_motions[rows]
    placed = (tensors.object_labels[rows] >= 0).any(-1)
    has = tensors.has("video")[rows] & placed.any(-1) & ((motions >= 0) | ~placed).all(-1)
    if not bool(has.any()):
        return zero_loss(step)
    encoder = model.encoders["video"]
    if not isinstance(encoder, VideoEncoder):
        raise ValueError(
            f"video_objects needs a VideoEncoder, the model has {type(encoder).__name__}"
        )
    fractions = step_fractions(encoder.frames, encoder.frames // encoder.steps)
    classes = [*model.object_classes(), len(MOTION_CLASSES) + 1]
    targets = video_object_targets(
        tensors.object_boxes[rows[has]],
        tensors.object_labels[rows[has]],
        motions[has],
        fractions,
        encoder.grid,
        [c - 1 for c in classes],
    )
    video = step.encoded("video")
    logits = [group[has] for group in model.object_logits(video)]
    logits.append(encoder.motion_logits(video.tokens[has]))
    return dense_cross_entropy(logits, targets)
