"""What the image tokens know: the object head read at each object's centre.

For every object of a scene graph, the image token whose cell holds the object's centre is
classified by the object head (trained by the ``objects`` task); the prediction must name the
object's colour, shape and size ("no object" counts as wrong). This measures the image tower
directly, without questions or captions in the way.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trimodal.data.tensors import OBJECT_GROUPS, SceneTensors, to_float_images
from trimodal.models.trimodal import TriModalModel


def trains_object_head(model: TriModalModel) -> bool:
    """Whether the checkpoint's recipe trained the object head (else it is left at its init)."""
    train = model.config.train
    return (
        ("objects" in train.vision.tasks and train.vision.epochs > 0)
        or "objects" in train.align.auxiliary
        or ("objects" in train.multitask.tasks and train.multitask.epochs > 0)
    )


def centre_cells(boxes: torch.Tensor, grid: int) -> torch.Tensor:
    """``[B, K]`` row-major index of the grid cell holding each object's centre."""
    column = (boxes[..., 0] * grid).long().clamp(0, grid - 1)
    row = (boxes[..., 1] * grid).long().clamp(0, grid - 1)
    return row * grid + column


def object_head_accuracy(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor, batch: int = 256
) -> dict[str, Any] | None:
    """Per-object colour / shape / size accuracy of the object head; None without objects."""
    correct = torch.zeros(len(OBJECT_GROUPS), device=rows.device)
    counted = torch.zeros(len(OBJECT_GROUPS), device=rows.device)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        labels = tensors.object_labels[chunk]  # (B, K, 3)
        if not bool((labels >= 0).any()):
            continue
        logits = model.object_logits(model.encode("image", to_float_images(tensors.images[chunk])))
        cells = centre_cells(tensors.object_boxes[chunk], model.image_grid)  # (B, K)
        for g, group in enumerate(logits):
            predicted = group.gather(1, cells.unsqueeze(-1).expand(-1, -1, group.shape[-1]))
            known = labels[..., g] >= 0
            hits = predicted.argmax(-1) == labels[..., g]
            correct[g] += (hits & known).sum()
            counted[g] += known.sum()
    if counted.sum() == 0:
        return None
    result: dict[str, Any] = {
        group: float(correct[g] / counted[g]) if counted[g] else math.nan
        for g, group in enumerate(OBJECT_GROUPS)
    }
    result["objects"] = int(counted.max())
    return result
