"""Hand-computed checks for TensorFusion (TFN) and LowRankTensorFusion (LMF)."""

from __future__ import annotations

import torch

from trimodal.modules.fusion import LowRankTensorFusion, TensorFusion
from trimodal.modules.layers import TokenSequence


def explicit_mean(seq: TokenSequence) -> torch.Tensor:
    """Mean over real tokens, row by row: ``[B, D]``."""
    return torch.stack([row[mask].mean(0) for row, mask in zip(seq.tokens, seq.mask, strict=True)])


def sample(batch: int, length: int, dim: int, seed: int) -> TokenSequence:
    """Random tokens with a ragged mask (row b keeps its first b + 1 tokens)."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, length, dim, generator=generator)
    mask = torch.arange(length)[None, :] <= torch.arange(batch)[:, None]
    return TokenSequence(tokens, mask)


def with_one(z: torch.Tensor) -> torch.Tensor:
    """``[B, r]`` -> ``[B, r + 1]`` ending in 1."""
    return torch.cat([z, torch.ones(z.shape[0], 1)], dim=1)


def test_lmf_two_modalities_equals_explicit_tensor_fusion() -> None:
    torch.manual_seed(0)
    dim, reduced, rank = 6, 3, 4
    fusion = LowRankTensorFusion(dim, ("audio", "text"), reduced=reduced, rank=rank).eval()
    with torch.no_grad():
        fusion.bias.normal_()
    inputs = {"text": sample(3, 4, dim, 1), "audio": sample(3, 5, dim, 2)}
    output = fusion(inputs).tokens[:, 0]

    with torch.no_grad():
        za = with_one(fusion.projections["audio"](explicit_mean(inputs["audio"])))
        zt = with_one(fusion.projections["text"](explicit_mean(inputs["text"])))
        wa, wt = fusion.factors["audio"], fusion.factors["text"]
        # Full TFN weight W[i, j, d] = sum_r Wa[r, i, d] * Wt[r, j, d], built term by term.
        weight = torch.zeros(reduced + 1, reduced + 1, dim)
        for r in range(rank):
            for i in range(reduced + 1):
                for j in range(reduced + 1):
                    weight[i, j] += wa[r, i] * wt[r, j]
        outer = za[:, :, None] * zt[:, None, :]  # (B, reduced + 1, reduced + 1)
        expected = torch.einsum("bij,ijd->bd", outer, weight) + fusion.bias
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


def test_lmf_single_modality_is_affine_in_its_factor() -> None:
    torch.manual_seed(0)
    fusion = LowRankTensorFusion(4, ("image", "text"), reduced=2, rank=3).eval()
    inputs = {"image": sample(2, 3, 4, 3)}
    with torch.no_grad():
        z = with_one(fusion.projections["image"](explicit_mean(inputs["image"])))
        expected = torch.einsum("bi,rid->bd", z, fusion.factors["image"]) + fusion.bias
    torch.testing.assert_close(fusion(inputs).tokens[:, 0], expected, atol=1e-5, rtol=0)


def test_tfn_has_one_head_per_subset_with_matching_width() -> None:
    fusion = TensorFusion(8, ("text", "audio", "image"), reduced=2)
    widths = {key: head.in_features for key, head in fusion.heads.items()}
    assert widths == {
        "audio": 3,
        "image": 3,
        "text": 3,
        "audio+image": 9,
        "audio+text": 9,
        "image+text": 9,
        "audio+image+text": 27,
    }


def test_tfn_two_modalities_equals_explicit_outer_product() -> None:
    torch.manual_seed(0)
    fusion = TensorFusion(5, ("audio", "image", "text"), reduced=2).eval()
    inputs = {"text": sample(3, 4, 5, 4), "image": sample(3, 6, 5, 5)}
    with torch.no_grad():
        zi = with_one(fusion.projections["image"](explicit_mean(inputs["image"])))
        zt = with_one(fusion.projections["text"](explicit_mean(inputs["text"])))
        # Sorted order: image is the outer (slow) index, text the inner one.
        flat = torch.stack([torch.outer(a, b).flatten() for a, b in zip(zi, zt, strict=True)])
        expected = fusion.heads["image+text"](flat)
    torch.testing.assert_close(fusion(inputs).tokens[:, 0], expected, atol=1e-5, rtol=0)
