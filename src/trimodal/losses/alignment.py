"""The contrastive loss of a step: :func:`~trimodal.losses.contrastive.pairwise_contrastive` over
the modalities a recipe's pairs name, each pair on the rows that have both."""

from __future__ import annotations

import torch

from trimodal.losses.contrastive import pairwise_contrastive
from trimodal.losses.step import StepInputs, present_rows


def contrastive_loss(
    step: StepInputs,
    pairs: list[tuple[str, str]],
    kind: str,
    margin: float,
    gather: bool,
    anchors: dict[str, str] | None = None,
    anchor_gradient: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pairwise contrastive loss over the modalities the pairs name, each pair aligned on the
    rows that have both (:func:`present_rows`)."""
    needed = {m for pair in pairs for m in pair}
    rows = {m: present_rows(step, m) for m in sorted(needed)}
    embeddings = {m: step.encoded(m).pooled[rows[m]] for m in sorted(needed)}
    if kind not in ("info_nce", "cosine"):
        raise ValueError(f"train.align.loss must be 'info_nce' or 'cosine', got {kind!r}")
    output = pairwise_contrastive(
        embeddings,
        rows,
        pairs,
        step.model.temperature(),
        kind="cosine" if kind == "cosine" else "info_nce",
        margin=margin,
        gather=gather,
        anchors=anchors,
        anchor_gradient=anchor_gradient,
    )
    return output.total, output.parts
