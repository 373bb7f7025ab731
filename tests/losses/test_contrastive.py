"""Contrastive losses against naive per-example references and hand-computed tiny cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from trimodal.losses.contrastive import (
    ContrastiveOutput,
    cosine_alignment,
    distributed_info_nce,
    gather_with_grad,
    info_nce,
    pair_key,
    pairwise_contrastive,
    shared_rows,
)


def _unit(row: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in row))
    return [v / norm for v in row]


def _dot(u: list[float], v: list[float]) -> float:
    return sum(x * y for x, y in zip(u, v, strict=True))


def _neg_log_softmax(logits: list[float], target: int) -> float:
    top = max(logits)
    log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
    return log_sum - logits[target]


def naive_info_nce(
    a: torch.Tensor, b: torch.Tensor, logit_scale: float, normalize: bool = True
) -> float:
    """Symmetric InfoNCE with explicit loops over the batch."""
    rows_a, rows_b = a.tolist(), b.tolist()
    if normalize:
        rows_a, rows_b = [_unit(r) for r in rows_a], [_unit(r) for r in rows_b]
    scale = min(math.exp(logit_scale), 100.0)
    n = len(rows_a)
    sim = [[scale * _dot(rows_a[i], rows_b[j]) for j in range(n)] for i in range(n)]
    a_to_b = sum(_neg_log_softmax(sim[i], i) for i in range(n)) / n
    b_to_a = sum(_neg_log_softmax([sim[i][j] for i in range(n)], j) for j in range(n)) / n
    return (a_to_b + b_to_a) / 2


def naive_cosine(a: torch.Tensor, b: torch.Tensor, margin: float) -> float:
    """Cosine-embedding formulation with explicit loops."""
    rows_a = [_unit(r) for r in a.tolist()]
    rows_b = [_unit(r) for r in b.tolist()]
    n = len(rows_a)
    positive = sum(1 - _dot(rows_a[i], rows_b[i]) for i in range(n)) / n
    negatives = [
        max(0.0, _dot(rows_a[i], rows_b[j]) - margin) for i in range(n) for j in range(n) if i != j
    ]
    return positive + sum(negatives) / len(negatives)


def _pair(batch: int = 5, dim: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, dim, generator=gen, dtype=torch.float64),
        torch.randn(batch, dim, generator=gen, dtype=torch.float64),
    )


# --- info_nce ---------------------------------------------------------------------------------


def test_info_nce_hand_computed_identity() -> None:
    """logits = I: each CE term is log(1 + e^-1)."""
    eye = torch.eye(2, dtype=torch.float64)
    loss = info_nce(eye, eye, torch.tensor(0.0, dtype=torch.float64))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-12)


@pytest.mark.parametrize("logit_scale", [0.0, 1.3, math.log(1 / 0.07)])
def test_info_nce_matches_naive(logit_scale: float) -> None:
    a, b = _pair()
    loss = info_nce(a, b, torch.tensor(logit_scale, dtype=torch.float64))
    assert loss.item() == pytest.approx(naive_info_nce(a, b, logit_scale), abs=1e-10)


def test_info_nce_without_normalization_matches_naive() -> None:
    a, b = _pair(batch=3, seed=1)
    loss = info_nce(a, b, torch.tensor(0.5, dtype=torch.float64), normalize=False)
    assert loss.item() == pytest.approx(naive_info_nce(a, b, 0.5, normalize=False), abs=1e-10)


def test_info_nce_clamps_scale_at_100() -> None:
    a, b = _pair(seed=2)
    clamped = info_nce(a, b, torch.tensor(math.log(1000.0), dtype=torch.float64))
    at_max = info_nce(a, b, torch.tensor(math.log(100.0), dtype=torch.float64))
    assert clamped.item() == pytest.approx(at_max.item(), abs=1e-10)


def test_info_nce_is_symmetric_and_differentiable() -> None:
    a, b = _pair(seed=3)
    a.requires_grad_(True)
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    loss = info_nce(a, b, scale)
    assert loss.item() == pytest.approx(info_nce(b, a, scale).item(), abs=1e-12)
    loss.backward()
    assert a.grad is not None and scale.grad is not None
    assert torch.isfinite(a.grad).all()


# --- cosine_alignment -------------------------------------------------------------------------


def test_cosine_alignment_hand_computed() -> None:
    """Positives cos (1, 0) -> 0.5; negatives cos (0, 1) -> mean(0, 0.8) = 0.4."""
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert cosine_alignment(a, b, margin=0.2).item() == pytest.approx(0.9, abs=1e-6)


def test_cosine_alignment_zero_for_orthonormal_match() -> None:
    eye = torch.eye(3)
    assert cosine_alignment(eye, eye).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("margin", [0.0, 0.2, -0.5])
def test_cosine_alignment_matches_naive(margin: float) -> None:
    a, b = _pair(batch=4, seed=4)
    loss = cosine_alignment(a, b, margin=margin)
    assert loss.item() == pytest.approx(naive_cosine(a, b, margin), abs=1e-10)


def test_cosine_alignment_single_row_has_no_negative_term() -> None:
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[1.0, 1.0]])
    assert cosine_alignment(a, b).item() == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)


# --- pairwise_contrastive ---------------------------------------------------------------------


def test_pair_key_sorts_names() -> None:
    assert pair_key("text", "image") == "image-text" == pair_key("image", "text")


def test_shared_rows_aligns_by_batch_position() -> None:
    index_a, index_b = shared_rows(torch.tensor([0, 1, 2, 3]), torch.tensor([3, 1, 7, 2]))
    assert index_a.tolist() == [1, 2, 3]
    assert index_b.tolist() == [1, 3, 0]


def _three_modalities() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    embeddings = {
        "image": torch.randn(4, 3, generator=gen, dtype=torch.float64),
        "text": torch.randn(3, 3, generator=gen, dtype=torch.float64),
        "audio": torch.randn(2, 3, generator=gen, dtype=torch.float64),
    }
    rows = {
        "image": torch.tensor([0, 1, 2, 3]),
        "text": torch.tensor([3, 1, 2]),
        "audio": torch.tensor([2, 5]),
    }
    return embeddings, rows


def test_pairwise_aligns_shared_rows_and_skips_small_pairs() -> None:
    embeddings, rows = _three_modalities()
    scale = torch.tensor(0.7, dtype=torch.float64)
    out = pairwise_contrastive(
        embeddings, rows, [("text", "image"), ("audio", "image"), ("audio", "text")], scale
    )
    assert isinstance(out, ContrastiveOutput)
    # image-audio share only position 2, audio-text only position 2: both skipped.
    assert list(out.parts) == ["image-text"]
    # shared positions 1, 2, 3: image rows 1, 2, 3; text rows 1, 2, 0.
    expected = naive_info_nce(embeddings["image"][[1, 2, 3]], embeddings["text"][[1, 2, 0]], 0.7)
    assert out.parts["image-text"].item() == pytest.approx(expected, abs=1e-10)
    assert out.total.item() == pytest.approx(expected, abs=1e-10)


def test_pairwise_total_is_mean_of_parts_and_duplicates_count_once() -> None:
    embeddings, rows = _three_modalities()
    rows["audio"] = torch.tensor([2, 1])
    scale = torch.tensor(0.0, dtype=torch.float64)
    out = pairwise_contrastive(
        embeddings, rows, [("image", "text"), ("text", "image"), ("image", "audio")], scale
    )
    assert sorted(out.parts) == ["audio-image", "image-text"]
    audio_image = naive_info_nce(embeddings["audio"][[1, 0]], embeddings["image"][[1, 2]], 0.0)
    assert out.parts["audio-image"].item() == pytest.approx(audio_image, abs=1e-10)
    mean = (out.parts["audio-image"] + out.parts["image-text"]) / 2
    assert out.total.item() == pytest.approx(mean.item(), abs=1e-12)


def test_pairwise_cosine_kind() -> None:
    embeddings, rows = _three_modalities()
    out = pairwise_contrastive(
        embeddings, rows, [("image", "text")], torch.tensor(0.0), kind="cosine", margin=0.1
    )
    expected = naive_cosine(embeddings["image"][[1, 2, 3]], embeddings["text"][[1, 2, 0]], 0.1)
    assert out.parts["image-text"].item() == pytest.approx(expected, abs=1e-10)


def test_pairwise_with_no_applicable_pair_is_attached_zero() -> None:
    embeddings, rows = _three_modalities()
    scale = torch.tensor(1.0, requires_grad=True)
    out = pairwise_contrastive(embeddings, rows, [("image", "depth"), ("audio", "text")], scale)
    assert out.parts == {}
    assert out.total.item() == 0.0
    assert out.total.requires_grad
    out.total.backward()
    assert scale.grad is not None and scale.grad.item() == 0.0


def test_pairwise_rejects_mismatched_rows() -> None:
    embeddings, rows = _three_modalities()
    rows["text"] = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="text"):
        pairwise_contrastive(embeddings, rows, [("image", "text")], torch.tensor(0.0))
    del rows["text"]
    with pytest.raises(KeyError, match="text"):
        pairwise_contrastive(embeddings, rows, [("image", "text")], torch.tensor(0.0))


def test_pairwise_gather_without_process_group_is_local() -> None:
    embeddings, rows = _three_modalities()
    scale = torch.tensor(0.3, dtype=torch.float64)
    local = pairwise_contrastive(embeddings, rows, [("image", "text")], scale)
    gathered = pairwise_contrastive(embeddings, rows, [("image", "text")], scale, gather=True)
    assert gathered.total.item() == pytest.approx(local.total.item(), abs=1e-12)


# --- distributed (collectives monkeypatched to simulate world size 2) -------------------------


def _fake_world(
    monkeypatch: pytest.MonkeyPatch, rank: int, remote: list[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """World size 2; ``remote`` pairs each local tensor with the other rank's, in the order they
    are gathered (each gather exchanges a row count, then the rows padded to the larger count)."""
    pending = list(remote)
    current: list[tuple[torch.Tensor, torch.Tensor]] = []

    def all_gather(tensor_list: list[torch.Tensor], tensor: torch.Tensor) -> None:
        with torch.no_grad():  # a real collective records no autograd history
            tensor_list[rank].copy_(tensor)
            if tensor.dtype == torch.long:  # a row count: the next pair begins
                current[:] = [pending.pop(0)]
                local, other = current[0]
                assert int(tensor.item()) == local.shape[0]
                tensor_list[1 - rank].fill_(other.shape[0])
                return
            local, other = current[0]
            assert torch.equal(tensor[: local.shape[0]], local.detach())
            tensor_list[1 - rank].zero_()
            tensor_list[1 - rank][: other.shape[0]] = other

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *args, **kwargs: 2)
    monkeypatch.setattr(dist, "get_rank", lambda *args, **kwargs: rank)
    monkeypatch.setattr(dist, "all_gather", all_gather)


def test_gather_is_identity_outside_process_group() -> None:
    x = torch.randn(2, 3)
    assert gather_with_grad(x) is x


def test_gather_is_identity_for_world_size_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *args, **kwargs: 1)
    x = torch.randn(2, 3)
    assert gather_with_grad(x) is x


@pytest.mark.parametrize("rank", [0, 1])
def test_gather_concatenates_in_rank_order_with_local_grad(
    monkeypatch: pytest.MonkeyPatch, rank: int
) -> None:
    local = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    other = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    _fake_world(monkeypatch, rank, [(local, other)])
    out = gather_with_grad(local)
    by_rank = [other, local] if rank == 1 else [local, other]
    assert out.shape == (6, 4)
    assert torch.equal(out, torch.cat(by_rank).detach())
    weights = torch.arange(24, dtype=torch.float64).view(6, 4)
    (out * weights).sum().backward()
    assert local.grad is not None
    assert torch.equal(local.grad, weights[3 * rank : 3 * rank + 3])
    assert other.grad is None


@pytest.mark.parametrize(("mine", "theirs"), [(2, 5), (5, 2), (0, 3)])
def test_gather_takes_uneven_row_counts(
    monkeypatch: pytest.MonkeyPatch, mine: int, theirs: int
) -> None:
    """Ranks whose batches lack a modality in different rows gather different counts."""
    local = torch.randn(mine, 4, dtype=torch.float64, requires_grad=True)
    other = torch.randn(theirs, 4, dtype=torch.float64)
    _fake_world(monkeypatch, 1, [(local, other)])
    out = gather_with_grad(local)
    assert torch.equal(out, torch.cat([other, local.detach()]))
    out.sum().backward()
    assert local.grad is not None
    assert torch.equal(local.grad, torch.ones_like(local))


@pytest.mark.parametrize("rank", [0, 1])
def test_distributed_info_nce_is_global_info_nce(
    monkeypatch: pytest.MonkeyPatch, rank: int
) -> None:
    a, b = _pair(batch=3, seed=6)
    other_a, other_b = _pair(batch=3, seed=7)
    a.requires_grad_(True)
    _fake_world(monkeypatch, rank, [(a, other_a), (b, other_b)])
    scale = torch.tensor(0.8, dtype=torch.float64)
    loss = distributed_info_nce(a, b, scale)

    order = (lambda mine, theirs: [theirs, mine]) if rank else (lambda mine, theirs: [mine, theirs])
    global_a, global_b = torch.cat(order(a, other_a)), torch.cat(order(b, other_b))
    assert loss.item() == pytest.approx(naive_info_nce(global_a, global_b, 0.8), abs=1e-10)

    (grad,) = torch.autograd.grad(loss, a)
    reference_a = a.detach().clone().requires_grad_(True)
    reference = info_nce(torch.cat(order(reference_a, other_a)), global_b.detach(), scale)
    (expected,) = torch.autograd.grad(reference, reference_a)
    assert torch.allclose(grad, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("pair", "local_rows"),
    [
        (("image", "text"), ([1, 2, 3], [1, 2, 0])),
        # audio and text share only position 2: one row here, yet the gathered pair has four,
        # and skipping is decided on the gathered rows, which every rank sees alike.
        (("audio", "text"), ([0], [2])),
    ],
)
def test_pairwise_gather_uses_global_batch(
    monkeypatch: pytest.MonkeyPatch,
    pair: tuple[str, str],
    local_rows: tuple[list[int], list[int]],
) -> None:
    embeddings, rows = _three_modalities()
    first, second = embeddings[pair[0]][local_rows[0]], embeddings[pair[1]][local_rows[1]]
    other_first, other_second = _pair(batch=3, dim=3, seed=8)
    _fake_world(monkeypatch, 0, [(first, other_first), (second, other_second)])
    out = pairwise_contrastive(
        embeddings, rows, [pair], torch.tensor(0.2, dtype=torch.float64), gather=True
    )
    expected = naive_info_nce(
        torch.cat([first, other_first]), torch.cat([second, other_second]), 0.2
    )
    assert out.parts["-".join(pair)].item() == pytest.approx(expected, abs=1e-10)


def _uneven_gather_worker(rank: int, port: int, folder: str) -> None:
    """One rank of a real gloo group: rank r holds 3 * r rows (rank 0 none)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        local = torch.full((3 * rank, 2), float(rank + 1), requires_grad=True)
        out = gather_with_grad(local)
        out.sum().backward()
        torch.save({"out": out.detach(), "grad": local.grad}, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_of_uneven_rows_over_a_real_gloo_group(tmp_path: Path) -> None:
    """Two processes, one with no rows: both get the other's rows, in rank order."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_uneven_gather_worker, args=(port, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(saved["out"], torch.full((3, 2), 2.0))
    assert torch.equal(torch.load(tmp_path / "rank1.pt")["grad"], torch.ones(3, 2))


def test_an_anchored_modality_gets_no_gradient_from_its_pair() -> None:
    """Same loss; the anchor side is detached, the other side's gradient is unchanged."""
    embeddings, rows = _three_modalities()
    rows["audio"] = torch.tensor([2, 1])
    scale = torch.tensor(0.4, dtype=torch.float64)
    pairs = [("audio", "text"), ("image", "text")]

    def run(
        anchors: dict[str, str] | None, fraction: float = 0.0
    ) -> tuple[ContrastiveOutput, dict[str, torch.Tensor]]:
        leaves = {m: e.clone().requires_grad_(True) for m, e in embeddings.items()}
        out = pairwise_contrastive(
            leaves, rows, pairs, scale, anchors=anchors, anchor_gradient=fraction
        )
        out.parts["audio-text"].backward()
        return out, {m: leaf.grad for m, leaf in leaves.items() if leaf.grad is not None}

    free, free_grads = run(None)
    anchored, anchored_grads = run({"audio-text": "text"})
    assert anchored.parts["audio-text"].item() == pytest.approx(free.parts["audio-text"].item())
    assert anchored.total.item() == pytest.approx(free.total.item())
    assert set(free_grads) == {"audio", "text"}
    assert set(anchored_grads) == {"audio"}
    assert torch.allclose(anchored_grads["audio"], free_grads["audio"])
    partial, partial_grads = run({"audio-text": "text"}, fraction=0.25)
    assert partial.total.item() == pytest.approx(free.total.item())
    assert torch.allclose(partial_grads["audio"], free_grads["audio"])
    assert torch.allclose(partial_grads["text"], 0.25 * free_grads["text"])
