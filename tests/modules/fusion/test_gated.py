"""Hand-computed checks for GatedFusion."""

from __future__ import annotations

import torch

from trimodal.modules.fusion import GatedFusion
from trimodal.modules.layers import TokenSequence


def test_gated_matches_explicit_gmu() -> None:
    torch.manual_seed(0)
    fusion = GatedFusion(4, ("audio", "image", "text")).eval()
    image = TokenSequence(torch.randn(2, 3, 4), torch.tensor([[True, False, True], [True] * 3]))
    text = TokenSequence(torch.randn(2, 2, 4), torch.tensor([[True, True], [True, False]]))
    output = fusion({"text": text, "image": image})
    with torch.no_grad():
        pi = torch.stack([image.tokens[0, [0, 2]].mean(0), image.tokens[1].mean(0)])
        pt = torch.stack([text.tokens[0].mean(0), text.tokens[1, :1].mean(0)])
        average = (pi + pt) / 2
        li = fusion.gates["image"](torch.cat([pi, average], 1))[:, 0]
        lt = fusion.gates["text"](torch.cat([pt, average], 1))[:, 0]
        gi = torch.exp(li) / (torch.exp(li) + torch.exp(lt))
        gt = 1 - gi
        table = fusion.type_embedding.table
        hi = gi[:, None, None] * torch.tanh(fusion.projections["image"](image.tokens))
        ht = gt[:, None, None] * torch.tanh(fusion.projections["text"](text.tokens))
        expected = torch.cat([hi + table["image"], ht + table["text"]], dim=1)
    torch.testing.assert_close(output.tokens, expected, atol=1e-6, rtol=0)
    assert torch.equal(output.mask, torch.cat([image.mask, text.mask], dim=1))


def test_gate_weights_are_a_distribution_over_present_modalities() -> None:
    torch.manual_seed(0)
    fusion = GatedFusion(4, ("audio", "image", "text"))
    inputs = {
        name: TokenSequence(torch.randn(3, 2, 4), torch.ones(3, 2, dtype=torch.bool))
        for name in ("audio", "text")
    }
    weights = fusion.gate_weights(inputs)
    assert weights.shape == (3, 2)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert (weights > 0).all()
