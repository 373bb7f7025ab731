"""Retrieval ranks against naive full-sort versions written here, ties counted pessimistically."""

from __future__ import annotations

import statistics

import pytest
import torch

from trimodal.data.tensors import content_groups
from trimodal.eval.retrieval import (
    first_hit_ranks,
    image_caption_retrieval,
    median_rank,
    recall_summary,
)


def naive_ranks(
    queries: torch.Tensor, gallery: torch.Tensor, q_groups: list[int], g_groups: list[int]
) -> list[int]:
    """Sort the whole gallery per query; at equal score, irrelevant items go first."""
    scores = queries @ gallery.T
    ranks = []
    for i in range(len(queries)):
        relevant = [g_groups[j] == q_groups[i] for j in range(len(gallery))]
        order = sorted(range(len(gallery)), key=lambda j: (-float(scores[i, j]), relevant[j]))
        hits = [position + 1 for position, j in enumerate(order) if relevant[j]]
        ranks.append(hits[0] if hits else len(gallery) + 1)
    return ranks


def naive_recall(ranks: list[int], k: int) -> float:
    return sum(rank <= k for rank in ranks) / len(ranks)


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


def test_ranks_match_naive_with_many_exact_ties() -> None:
    # small-integer vectors: dot products are exact, so many scores tie exactly
    generator = torch.Generator().manual_seed(1)
    queries = torch.randint(0, 3, (41, 4), generator=generator).float()
    gallery = torch.randint(0, 3, (29, 4), generator=generator).float()
    q_groups = torch.randint(0, 12, (41,), generator=generator)
    g_groups = torch.randint(0, 12, (29,), generator=generator)
    expected = naive_ranks(queries, gallery, q_groups.tolist(), g_groups.tolist())
    for chunk in (1, 7, 1000):
        assert (
            first_hit_ranks(queries, gallery, q_groups, g_groups, chunk=chunk).tolist() == expected
        )


def test_collapsed_model_scores_nothing() -> None:
    """Every embedding equal: each query ties with all 99 others and ranks last among them."""
    embeddings = torch.nn.functional.normalize(torch.ones(100, 16), dim=-1)
    ids = content_groups([f"scene {i}" for i in range(100)])
    summary = recall_summary(first_hit_ranks(embeddings, embeddings, ids, ids))
    assert summary == {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "median_rank": 100.0}


def test_collapsed_model_still_hits_true_duplicates() -> None:
    """Items with identical content are all relevant: a gallery of one content is all hits."""
    embeddings = torch.ones(6, 4) / 2
    ids = content_groups(["a red circle"] * 6)
    assert first_hit_ranks(embeddings, embeddings, ids, ids).tolist() == [1] * 6


def test_a_tie_with_an_irrelevant_item_counts_against_the_query() -> None:
    queries = torch.tensor([[1.0, 0.0]])
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # items 0 and 1 tie
    assert first_hit_ranks(queries, gallery, torch.tensor([0]), torch.tensor([1, 0, 2])) == 2
    # the duplicate of the relevant item does not count against it
    assert first_hit_ranks(queries, gallery, torch.tensor([0]), torch.tensor([0, 0, 2])) == 1


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


@pytest.mark.parametrize(
    "ranks", [[3], [4, 1], [1, 2, 3, 4], [5, 1, 9, 2, 2, 7], [10, 1, 1, 1, 3, 8, 2]]
)
def test_median_rank_is_the_usual_median(ranks: list[int]) -> None:
    assert median_rank(torch.tensor(ranks)) == statistics.median(ranks)


# ---------------------------------------------------------------------------------------------
# the standard image-caption protocol


def naive_image_caption(
    images: torch.Tensor, captions: torch.Tensor, owner: list[int]
) -> dict[str, list[int]]:
    """Per caption, the rank of its own image; per image, the rank of its first caption."""
    scores = captions @ images.T  # (C, I)
    text_to_image = []
    for c in range(len(captions)):
        order = sorted(range(len(images)), key=lambda i: (-float(scores[c, i]), i == owner[c]))
        text_to_image.append(order.index(owner[c]) + 1)
    image_to_text = []
    for i in range(len(images)):
        mine = [owner[c] == i for c in range(len(captions))]
        order = sorted(range(len(captions)), key=lambda c: (-float(scores[c, i]), mine[c]))
        image_to_text.append(next(p + 1 for p, c in enumerate(order) if mine[c]))
    return {"text->image": text_to_image, "image->text": image_to_text}


def _check_against_naive(images: torch.Tensor, captions: torch.Tensor, owner: list[int]) -> None:
    result = image_caption_retrieval(images, captions, torch.tensor(owner))
    naive = naive_image_caption(images, captions, owner)
    recalls = []
    for direction, ranks in naive.items():
        for k in (1, 5, 10):
            assert result[direction][f"R@{k}"] == pytest.approx(naive_recall(ranks, k))
            recalls.append(naive_recall(ranks, k))
        assert result[direction]["median_rank"] == statistics.median(ranks)
    assert result["rsum"] == pytest.approx(100 * sum(recalls))
    assert result["mean_recall"] == pytest.approx(sum(recalls) / 6)
    assert (result["images"], result["captions"]) == (len(images), len(captions))


def test_image_caption_protocol_hand_computed_with_ties() -> None:
    images = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    captions = torch.tensor(
        [
            [1.0, 0.0, 0.0],  # image 0's: own image first -> t->i rank 1
            [1.0, 1.0, 0.0],  # image 0's: ties images 0 and 1 -> rank 2 (pessimistic)
            [0.0, 1.0, 0.0],  # image 1's: rank 1
            [0.0, 0.0, 1.0],  # image 1's: image 2 first, images 0 and 1 tie at 0 -> rank 3
            [0.0, 0.0, 1.0],  # image 2's: rank 1
        ]
    )
    owner = [0, 0, 1, 1, 2]
    result = image_caption_retrieval(images, captions, torch.tensor(owner))
    assert naive_image_caption(images, captions, owner)["text->image"] == [1, 2, 1, 3, 1]
    assert result["text->image"]["R@1"] == pytest.approx(3 / 5)
    # image->text: image 0 ranks captions 0 and 1 first (score 1) -> rank 1; image 1: captions
    # 1 (image 0's) and 2 (its own) tie at 1 -> rank 2; image 2: captions 3 (image 1's) and 4
    # (its own) tie at 1 -> rank 2.
    assert naive_image_caption(images, captions, owner)["image->text"] == [1, 2, 2]
    assert result["image->text"]["R@1"] == pytest.approx(1 / 3)
    _check_against_naive(images, captions, owner)


def test_image_caption_protocol_matches_naive_on_random_sets() -> None:
    generator = torch.Generator().manual_seed(3)
    for images_count in (4, 13):
        owner = [i for i in range(images_count) for _ in range(5)]
        images = torch.randint(0, 3, (images_count, 3), generator=generator).float()
        captions = torch.randint(0, 3, (len(owner), 3), generator=generator).float()
        _check_against_naive(images, captions, owner)


def test_image_caption_protocol_collapsed_model() -> None:
    images, captions = torch.ones(20, 4), torch.ones(100, 4)
    owner = torch.arange(20).repeat_interleave(5)
    result = image_caption_retrieval(images, captions, owner)
    assert result["rsum"] == 0.0
    assert result["text->image"]["median_rank"] == 20.0
    assert result["image->text"]["median_rank"] == 96.0  # behind the 95 other captions


def test_image_caption_protocol_rejects_mismatched_owners() -> None:
    with pytest.raises(ValueError, match="3 captions but 2 owner"):
        image_caption_retrieval(torch.ones(2, 4), torch.ones(3, 4), torch.tensor([0, 1]))
