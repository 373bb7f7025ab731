"""Image-only losses from scene graphs: multi-label scene attributes and per-token objects."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trimodal.losses.step import StepInputs, zero_loss


def attribute_loss(step: StepInputs) -> torch.Tensor:
    """Multi-label BCE of scene attributes from image tokens (rows with a scene graph)."""
    has = step.tensors.has_scene[step.rows]
    if not bool(has.any()):
        return zero_loss(step)
    logits = step.model.attribute_logits(step.image())
    targets = step.tensors.attributes[step.rows]
    return F.binary_cross_entropy_with_logits(logits[has], targets[has])


def object_grid_targets(
    boxes: torch.Tensor, labels: torch.Tensor, grid: int, background: list[int]
) -> torch.Tensor:
    """Dense object targets for a ``grid x grid`` token layout: ``[B, G, grid * grid]``.

    A token's cell is covered by an object when the cell centre lies within the object's
    radius (or half a cell, so a small object always owns the cell under its centre); of
    several covering objects the nearest centre wins. A covered cell gets that object's colour,
    shape and size index (-100, ignored, where the object's value is unknown); an uncovered one
    gets ``background`` (the "no object" class of each group).

    Args:
        boxes: ``[B, K, 3]`` centre ``x, y`` and radius as fractions of the image side.
        labels: ``[B, K, G]`` each object's class in each of ``G`` groups (colour, shape, size,
            ...; -1 on padding rows of ``K``, and where a value is unknown).
        background: ``G`` classes, one a group, for cells no object covers.
    """
    centres = (torch.arange(grid, dtype=boxes.dtype, device=boxes.device) + 0.5) / grid
    cell_y, cell_x = torch.meshgrid(centres, centres, indexing="ij")  # row-major like tokens
    dx = cell_x.reshape(1, 1, -1) - boxes[..., 0:1]  # (B, K, T)
    dy = cell_y.reshape(1, 1, -1) - boxes[..., 1:2]
    distance = (dx.square() + dy.square()).sqrt()
    reach = boxes[..., 2:3].clamp(min=0.5 / grid)
    present = (labels >= 0).any(-1, keepdim=True)  # (B, K, 1)
    covering = (distance < reach) & present
    nearest = distance.masked_fill(~covering, float("inf")).argmin(dim=1)  # (B, T)
    groups = labels.shape[-1]
    picked = labels.gather(1, nearest.unsqueeze(-1).expand(-1, -1, groups))  # (B, T, G)
    picked = picked.masked_fill(picked < 0, -100)
    fill = torch.tensor(background, dtype=torch.long, device=labels.device).expand_as(picked)
    return torch.where(covering.any(1).unsqueeze(-1), picked, fill).transpose(1, 2)


def object_loss(step: StepInputs) -> torch.Tensor:
    """Per-token cross-entropy of the object under each image token (colour, shape, size).

    Presence labels ("is there a star") tell the image tower *that* a shape is somewhere;
    dense targets tell every token *what* covers it, which teaches shape in far fewer steps.
    Rows without a placed scene graph are skipped.
    """
    model, tensors, rows = step.model, step.tensors, step.rows
    has = tensors.has_scene[rows] & (tensors.object_labels[rows] >= 0).any(-1).any(-1)
    if not bool(has.any()):
        return zero_loss(step)
    classes = model.object_classes()
    targets = object_grid_targets(
        tensors.object_boxes[rows[has]],
        tensors.object_labels[rows[has]],
        model.image_grid,
        [c - 1 for c in classes],
    )
    logits = model.object_logits(step.image())
    return dense_cross_entropy([group[has] for group in logits], targets)


def dense_cross_entropy(groups: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy summed over label groups: ``groups[g] [B, T, C_g]`` scores,
    ``targets [B, G, T]`` class indices (-100 ignored); each group is a mean over its tokens."""
    losses = [
        F.cross_entropy(group.flatten(0, 1), targets[:, g].flatten(), ignore_index=-100)
        for g, group in enumerate(groups)
    ]
    return torch.stack(losses).sum()
