"""Duplicate-aware retrieval metrics: a hit is any gallery item with the query's content."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def content_groups(keys: Sequence[str]) -> torch.Tensor:
    """Integer id per distinct content key ``[N]`` (equal ids = same content)."""
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(key, len(index)) for key in keys], dtype=torch.long)


def first_hit_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    query_groups: torch.Tensor,
    gallery_groups: torch.Tensor,
    chunk: int = 1024,
) -> torch.Tensor:
    """1-based rank of the best-ranked relevant gallery item for each query.

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
        relevant = query_groups[start : start + chunk, None] == gallery_groups[None, :]
        best_relevant = scores.masked_fill(~relevant, float("-inf")).max(dim=1).values  # (C,)
        better = (scores > best_relevant[:, None]).sum(dim=1)
        rank = better + 1
        rank[~relevant.any(dim=1)] = len(gallery) + 1
        ranks.append(rank)
    return torch.cat(ranks)


def recall_summary(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``R@k`` for each k and the median rank."""
    summary = {f"R@{k}": float((ranks <= k).float().mean()) for k in ks}
    summary["median_rank"] = float(ranks.float().median())
    return summary
