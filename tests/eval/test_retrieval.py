"""Duplicate-aware retrieval ranks against a naive full-matrix version written here."""

from __future__ import annotations

import pytest
import torch

from trimodal.eval.retrieval import content_groups, first_hit_ranks, recall_summary


def naive_ranks(
    queries: torch.Tensor, gallery: torch.Tensor, q_groups: list[int], g_groups: list[int]
) -> list[int]:
    scores = queries @ gallery.T
    ranks = []
    for i in range(len(queries)):
        order = sorted(range(len(gallery)), key=lambda j: -float(scores[i, j]))
        hits = [position + 1 for position, j in enumerate(order) if g_groups[j] == q_groups[i]]
        ranks.append(hits[0] if hits else len(gallery) + 1)
    return ranks


def test_ranks_match_naive_with_duplicates_and_chunking() -> None:
    torch.manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(37, 8), dim=-1)
    gallery = torch.nn.functional.normalize(torch.randn(53, 8), dim=-1)
    q_groups = torch.randint(0, 20, (37,))
    g_groups = torch.randint(0, 25, (53,))
    expected = naive_ranks(queries, gallery, q_groups.tolist(), g_groups.tolist())
    for chunk in (1, 5, 1000):
        assert (
            first_hit_ranks(queries, gallery, q_groups, g_groups, chunk=chunk).tolist() == expected
        )


def test_hand_computed_recall() -> None:
    groups = content_groups(["red circle", "blue star", "red circle", "green square"])
    assert groups.tolist() == [0, 1, 0, 2]
    queries = torch.eye(4)[[0, 0, 2]]
    query_groups = torch.tensor([0, 1, 0])
    # gallery items 0 and 2 share content: a query matching item 2 best counts as a hit for 0.
    gallery = torch.tensor([[0.0, 1, 0, 0], [1.0, 0, 0, 0], [0.9, 0, 0.1, 0], [0.0, 0, 1, 0]])
    ranks = first_hit_ranks(queries, gallery, query_groups, groups)
    assert ranks.tolist() == [2, 1, 2]
    summary = recall_summary(ranks, ks=(1, 2))
    assert summary == pytest.approx({"R@1": 1 / 3, "R@2": 1.0, "median_rank": 2.0})
