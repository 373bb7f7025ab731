"""Contrastive alignment losses between modality embeddings.

Embeddings are ``[B, E]`` tensors, one row per example. ``logit_scale`` is a scalar tensor holding
the log of the inverse temperature (CLIP's parametrisation); the scale actually applied is
``exp(logit_scale)`` clamped to at most ``MAX_SCALE``.

Two formulations are offered: symmetric InfoNCE (:func:`info_nce`, the default) and the seeds'
cosine-embedding formulation (:func:`cosine_alignment`). :func:`pairwise_contrastive` applies one
of them to every requested pair of modalities, aligning examples by their batch position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F

from trimodal.modules.temperature import MAX_SCALE

"""Upper bound on ``exp(logit_scale)``, as in CLIP."""

ContrastiveKind = Literal["info_nce", "cosine"]


def info_nce(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, normalize: bool = True
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): row ``i`` of ``a`` matches row ``i`` of ``b``.

    Args:
        a: ``[B, E]`` embeddings of one modality.
        b: ``[B, E]`` embeddings of the other, row-aligned with ``a``.
        logit_scale: scalar tensor, log of the inverse temperature.
        normalize: L2-normalise the rows first (cosine similarities).

    Returns:
        Scalar tensor: ``(CE(logits, arange) + CE(logits.T, arange)) / 2`` with
        ``logits [B, B] = min(exp(logit_scale), 100) * a_n @ b_n.T``.
    """
    if normalize:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = logit_scale.exp().clamp(max=MAX_SCALE) * a @ b.T
    targets = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def cosine_alignment(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The seeds' cosine formulation (an option beside InfoNCE).

    A cosine-embedding loss: positives ``(a_i, b_i)`` are pulled to cosine 1, every off-diagonal
    pair ``(a_i, b_j), i != j`` is pushed below cosine ``margin``.

    Args:
        a: ``[B, E]`` embeddings of one modality.
        b: ``[B, E]`` embeddings of the other, row-aligned with ``a``.
        margin: cosine above which a negative pair is penalised.

    Returns:
        Scalar tensor: ``mean_i(1 - cos(a_i, b_i)) + mean_{i != j} relu(cos(a_i, b_j) - margin)``;
        the second term is zero when ``B == 1``.
    """
    cos = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T  # [B, B]
    eye = torch.eye(cos.shape[0], dtype=torch.bool, device=cos.device)
    positive = (1 - cos.diagonal()).mean()
    if cos.shape[0] < 2:
        return positive
    negative = F.relu(cos[~eye] - margin).mean()
    return positive + negative


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank, keeping the gradient path to this rank's slice.

    Other ranks' features arrive as constants; this rank's slot is ``x`` itself (open_clip's
    ``local_loss=False, gather_with_grad=False``). Ranks may hold different numbers of rows (a
    batch whose rows lack a modality): the row counts are exchanged first and every rank's rows
    travel padded to the largest count.

    Args:
        x: ``[B_r, E]`` local features (``B_r`` may differ between ranks, and may be 0).

    Returns:
        ``[sum_r B_r, E]`` in rank order, or ``x`` itself outside a multi-process group.
    """
    if not dist.is_available() or not dist.is_initialized():
        return x
    world = dist.get_world_size()
    if world == 1:
        return x
    counts = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([x.shape[0]], device=x.device))
    sizes = [int(count.item()) for count in counts]
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    pieces = [rows[:size] for rows, size in zip(gathered, sizes, strict=True)]
    pieces[dist.get_rank()] = x
    return torch.cat(pieces, dim=0)


def distributed_info_nce(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, normalize: bool = True
) -> torch.Tensor:
    """:func:`info_nce` over the global batch gathered from every rank.

    Each rank computes the same global loss; gradients reach only its local features, so the
    per-rank gradient is exactly ``dL/d(local features)`` (DDP's averaging then scales the
    parameter gradient by ``1 / world``, as in open_clip).

    Args:
        a: ``[B, E]`` local embeddings of one modality (``B`` may differ between ranks).
        b: ``[B, E]`` local embeddings of the other, row-aligned with ``a``.
        logit_scale: scalar tensor, log of the inverse temperature.
        normalize: L2-normalise the rows first.

    Returns:
        Scalar tensor: InfoNCE over the gathered ``[sum_r B_r, E]``.
    """
    return info_nce(gather_with_grad(a), gather_with_grad(b), logit_scale, normalize)


@dataclass(frozen=True)
class ContrastiveOutput:
    """A contrastive loss and its per-pair parts.

    Attributes:
        total: scalar tensor, mean of ``parts`` (zero, still attached to the graph, if empty).
        parts: ``{"a-b": scalar}`` per applied pair, names in sorted order (e.g. ``"image-text"``).
    """

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


def pair_key(first: str, second: str) -> str:
    """The part name of a pair: ``"a-b"`` with the names sorted."""
    low, high = sorted((first, second))
    return f"{low}-{high}"


def shared_rows(rows_a: torch.Tensor, rows_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into two modalities' batches selecting the batch positions both have.

    Args:
        rows_a: ``[B_a]`` batch positions of modality a's rows (unique).
        rows_b: ``[B_b]`` batch positions of modality b's rows (unique).

    Returns:
        ``(index_a [S], index_b [S])`` with ``rows_a[index_a] == rows_b[index_b]``, sorted by
        batch position.
    """
    match = rows_a[:, None] == rows_b[None, :].to(rows_a.device)  # [B_a, B_b]
    index_a, index_b = match.nonzero(as_tuple=True)
    order = rows_a[index_a].argsort()
    return index_a[order], index_b[order]


def _check_rows(embeddings: dict[str, torch.Tensor], rows: dict[str, torch.Tensor]) -> None:
    """Every embedded modality needs ``rows [B_m]`` matching its ``[B_m, E]`` embeddings."""
    for modality, embedding in embeddings.items():
        if modality not in rows:
            raise KeyError(f"no rows given for modality {modality!r}")
        if rows[modality].shape != embedding.shape[:1]:
            raise ValueError(
                f"{modality}: rows {tuple(rows[modality].shape)} do not match "
                f"embeddings {tuple(embedding.shape)}"
            )


def _pair_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    logit_scale: torch.Tensor,
    kind: ContrastiveKind,
    margin: float,
) -> torch.Tensor:
    """One pair's loss on row-aligned ``a [S, E]`` and ``b [S, E]``."""
    if kind == "info_nce":
        return info_nce(a, b, logit_scale)
    if kind == "cosine":
        return cosine_alignment(a, b, margin)
    raise ValueError(f"unknown contrastive kind {kind!r}; expected 'info_nce' or 'cosine'")


def pairwise_contrastive(
    embeddings: dict[str, torch.Tensor],
    rows: dict[str, torch.Tensor],
    pairs: Sequence[tuple[str, str]],
    logit_scale: torch.Tensor,
    kind: ContrastiveKind = "info_nce",
    margin: float = 0.2,
    gather: bool = False,
    anchors: Mapping[str, str] | None = None,
    anchor_gradient: float = 0.0,
) -> ContrastiveOutput:
    """Contrastive loss for every requested pair of modalities present in ``embeddings``.

    Each pair is aligned on the batch positions both modalities have; a pair sharing fewer than
    two positions (over all ranks, when gathering) is skipped. A pair requested twice (in either
    order) counts once.

    Args:
        embeddings: ``{modality: [B_m, E]}``.
        rows: ``{modality: LongTensor [B_m]}``, the batch position of each embedding row (unique).
        pairs: modality pairs to align, e.g. ``[("image", "text"), ("audio", "text")]``.
        logit_scale: scalar tensor, log of the inverse temperature (unused by ``"cosine"``).
        kind: ``"info_nce"`` (:func:`info_nce`) or ``"cosine"`` (:func:`cosine_alignment`).
        margin: negative margin for ``"cosine"``.
        gather: compute each pair over the global batch of every rank (:func:`gather_with_grad`).
            Every rank must then request the same pairs; their shared rows may differ.
        anchors: ``{pair key: modality}``, e.g. ``{"audio-text": "text"}``: in that pair the
            named modality is an anchor that the other side moves toward (ImageBind's recipe
            with a trainable hub); the anchor keeps only ``anchor_gradient`` of the pair's
            gradient (0: detached).
        anchor_gradient: fraction of a pair's gradient that reaches its anchor.

    Returns:
        :class:`ContrastiveOutput` with the mean over applied pairs and each pair's loss.
    """
    _check_rows(embeddings, rows)
    parts: dict[str, torch.Tensor] = {}
    for first, second in pairs:
        key = pair_key(first, second)
        low, high = sorted((first, second))
        if key in parts or low not in embeddings or high not in embeddings:
            continue
        index_low, index_high = shared_rows(rows[low], rows[high])
        a, b = embeddings[low][index_low], embeddings[high][index_high]
        anchor = (anchors or {}).get(key)
        if anchor == low:
            a = scale_gradient(a, anchor_gradient)
        elif anchor == high:
            b = scale_gradient(b, anchor_gradient)
        if gather:  # every rank gathers, even with no shared rows, so the collectives match
            a, b = gather_with_grad(a), gather_with_grad(b)
        if a.shape[0] < 2:
            continue
        parts[key] = _pair_loss(a, b, logit_scale, kind, margin)
    total = torch.stack(list(parts.values())).mean() if parts else logit_scale * 0.0
    return ContrastiveOutput(total=total, parts=parts)


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` unchanged in value, with its gradient multiplied by ``factor`` (0: detached)."""
    if factor == 0.0:
        return x.detach()
    return x.detach() + factor * (x - x.detach())
