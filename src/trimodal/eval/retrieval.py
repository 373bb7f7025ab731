"""Retrieval metrics with pessimistic ties, under two protocols.

- **Per-row** (the world's): every row is both a query and a gallery item; a hit is any gallery
  item with the query's content (:func:`trimodal.data.tensors.content_groups`), so repeated scenes count as hits.
- **Image-caption** (the standard COCO / Flickr30k protocol, :func:`image_caption_retrieval`):
  the gallery is unique images and their grouped captions; text->image hits the caption's own
  image, image->text hits any of the image's captions.

Ties are counted against the query: a relevant item ranks below every irrelevant item that
scores the same as it, so a collapsed model (every embedding equal) gets R@1 = 0, never 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

RECALL_KS = (1, 5, 10)


def first_hit_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_groups: torch.Tensor,
    gallery_groups: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """1-based rank of the best-ranked relevant gallery item for each query, ties pessimistic.

    The rank is one plus the number of *irrelevant* gallery items scoring at least as high as
    the best relevant one: other relevant items never push it down (duplicate-aware), and an
    irrelevant item that ties with it is ranked first (tie against the query).

    Args:
        queries: ``[Q, E]`` L2-normalized embeddings.
        gallery: ``[G, E]`` L2-normalized embeddings.
        query_groups / gallery_groups: content ids ``[Q]`` / ``[G]``; relevant = same id.
        chunk: queries scored at a time, so a 100k gallery never needs a ``Q x G`` matrix.

    Returns:
        ``[Q]`` ranks (``G + 1`` where no gallery item is relevant).
    """
    ranks = []
    for start in range(0, len(queries), chunk):
        scores = queries[start : start + chunk] @ gallery.T  # (C, G)
        relevant = query_groups[start : start + chunk, None] == gallery_groups[None, :]  # (C, G)
        best_relevant = scores.masked_fill(~relevant, float("-inf")).max(dim=1).values  # (C,)
        ahead = (scores >= best_relevant[:, None]) & ~relevant  # (C, G)
        rank = ahead.sum(dim=1) + 1
        rank[~relevant.any(dim=1)] = len(gallery) + 1
        ranks.append(rank)
    return torch.cat(ranks)


def median_rank(ranks: torch.Tensor) -> float:
    """The usual median of ``ranks [N]``: the mean of the two middle values when N is even."""
    ordered = ranks.double().sort().values
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2)


def recall_summary(ranks: torch.Tensor, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """``R@k`` for each k and the median rank (:func:`median_rank`) of ``ranks [N]``."""
    summary = {f"R@{k}": float((ranks <= k).float().mean()) for k in ks}
    summary["median_rank"] = median_rank(ranks)
    return summary


def image_caption_retrieval(
    images: torch.Tensor, captions: torch.Tensor, caption_image: torch.Tensor
) -> dict[str, Any]:
    """The standard image-caption retrieval protocol (COCO 5k, Flickr30k 1k).

    Args:
        images: ``[I, E]`` L2-normalized embeddings of the unique images (the gallery).
        captions: ``[C, E]`` L2-normalized embeddings of every caption.
        caption_image: ``[C]`` index into ``images`` of each caption's own image.

    Returns:
        ``{"protocol", "images", "captions", "text->image": {R@1, R@5, R@10, median_rank},
        "image->text": {...}, "rsum", "mean_recall"}``; ``rsum`` sums the six recalls in
        percent (0-600, as papers print it) and ``mean_recall`` is their mean in ``[0, 1]``.
    """
    if len(caption_image) != len(captions):
        raise ValueError(f"{len(captions)} captions but {len(caption_image)} owner indices")
    image_ids = torch.arange(len(images), device=images.device)
    text_to_image = recall_summary(first_hit_ranks(captions, images, caption_image, image_ids))
    image_to_text = recall_summary(first_hit_ranks(images, captions, image_ids, caption_image))
    recalls = [d[f"R@{k}"] for d in (text_to_image, image_to_text) for k in RECALL_KS]
    return {
        "protocol": "image-caption: gallery of unique images; t->i hits the caption's own "
        "image, i->t hits any of the image's captions; ties count against the query",
        "images": len(images),
        "captions": len(captions),
        "text->image": text_to_image,
        "image->text": image_to_text,
        "rsum": 100.0 * sum(recalls),
        "mean_recall": sum(recalls) / len(recalls),
    }
