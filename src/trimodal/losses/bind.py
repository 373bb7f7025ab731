"""The bind stage's loss: one modality's projection re-fit into another's fixed space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.data.tensors import SceneTensors, content_groups
from trimodal.losses.step import StepInputs, evaluating
from trimodal.models.stored_rows import row_encoders
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.temperature import MAX_SCALE


@dataclass
class BindTargets:
    """Fixed inputs of stage 2c (``train.bind``), for the training rows that have both
    modalities: ``features [R, D]`` (the follower's pooled output before its projection),
    ``anchors [R, E]`` (L2-normalized anchor embeddings), ``groups [R]`` (content ids: equal
    ids are captions of identical content) and ``position[row]`` (index among the R, or -1)."""

    modality: str
    features: torch.Tensor
    anchors: torch.Tensor
    groups: torch.Tensor
    position: torch.Tensor


def bind_targets(
    model: TriModalModel,
    tensors: SceneTensors,
    rows: torch.Tensor,
    modality: str,
    anchor: str,
    chunk: int = 256,
) -> BindTargets:
    """Encode ``rows`` once (eval mode, no gradient) for stage 2c; see :class:`BindTargets`."""
    rows = rows[tensors.has(modality)[rows] & tensors.has(anchor)[rows]]
    if len(rows) < 2:
        raise ValueError(
            f"train.bind needs at least 2 training rows with both {modality} and {anchor}, "
            f"found {len(rows)}"
        )
    encoders = row_encoders(model, tensors)
    pooler = cast(nn.Module, model.encoders[modality].pooler)
    features, anchors = [], []
    with evaluating(model):
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            follower = encoders[modality](part)
            features.append(pooler(follower.tokens, follower.mask))
            anchors.append(F.normalize(encoders[anchor](part).pooled, dim=-1))
    device = model.device
    position = torch.full((len(tensors.images),), -1, dtype=torch.long, device=device)
    position[rows.to(device)] = torch.arange(len(rows), device=device)
    groups = content_groups([tensors.content_keys[i] for i in rows.tolist()], device)
    return BindTargets(modality, torch.cat(features), torch.cat(anchors), groups, position)


def bind_loss(step: StepInputs, targets: BindTargets) -> torch.Tensor:
    """InfoNCE from the step's rows, through the trainable projection, to every anchor.

    Logits ``[B, R]`` are the model's (fixed) temperature times cosine similarities; a row's
    target is its own anchor, and other rows of identical content are left out of its
    negatives. Rows without both modalities are skipped.
    """
    at = targets.position[step.rows]
    at = at[at >= 0]
    projection = cast(nn.Linear, step.model.encoders[targets.modality].projection)
    if at.numel() == 0:  # zero, attached to the one trainable module of the stage
        return projection.weight.sum() * 0.0
    embedded = F.normalize(projection(targets.features[at]), dim=-1)  # (B, E)
    scale = step.model.temperature().exp().clamp(max=MAX_SCALE).detach()
    logits = scale * embedded @ targets.anchors.T  # (B, R)
    duplicate = targets.groups[at][:, None] == targets.groups[None, :]
    duplicate[torch.arange(len(at), device=at.device), at] = False
    return F.cross_entropy(logits.masked_fill(duplicate, float("-inf")), at)
