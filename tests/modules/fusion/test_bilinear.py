"""Hand-computed checks for BilinearFusion."""

from __future__ import annotations

import torch

from trimodal.modules.fusion import BilinearFusion
from trimodal.modules.layers import TokenSequence


def expected_output(fusion: BilinearFusion, pooled: dict[str, torch.Tensor]) -> torch.Tensor:
    """Explicit MFB: product of projections, window sums, signed sqrt, L2 norm, Linear."""
    joint = torch.ones(next(iter(pooled.values())).shape[0], fusion.factors * fusion.hidden)
    for name, vector in pooled.items():
        joint = joint * fusion.projections[name](vector)
    summed = torch.stack(
        [
            joint[:, o * fusion.factors : (o + 1) * fusion.factors].sum(1)
            for o in range(fusion.hidden)
        ],
        dim=1,
    )
    rooted = torch.sign(summed) * torch.sqrt(summed.abs())
    return fusion.out(rooted / rooted.norm(dim=1, keepdim=True))


def test_bilinear_matches_explicit_mfb() -> None:
    torch.manual_seed(0)
    fusion = BilinearFusion(6, ("audio", "image", "text"), factors=3, hidden=5).eval()
    masks = {
        "audio": torch.tensor([[True, True, False], [True, False, False]]),
        "image": torch.tensor([[True, True, True, True], [False, True, True, False]]),
        "text": torch.tensor([[True, False], [True, True]]),
    }
    inputs = {
        name: TokenSequence(torch.randn(2, mask.shape[1], 6), mask) for name, mask in masks.items()
    }
    with torch.no_grad():
        pooled = {
            name: torch.stack([row[m].mean(0) for row, m in zip(seq.tokens, seq.mask, strict=True)])
            for name, seq in inputs.items()
        }
        for subset in (("audio", "image", "text"), ("image",), ("audio", "text")):
            output = fusion({name: inputs[name] for name in subset})
            expected = expected_output(fusion, {name: pooled[name] for name in subset})
            torch.testing.assert_close(output.tokens[:, 0], expected, atol=1e-5, rtol=0)


def test_hidden_defaults_to_dim() -> None:
    fusion = BilinearFusion(12, ("audio", "text"), factors=2)
    assert fusion.hidden == 12
    assert fusion.projections["audio"].out_features == 24
