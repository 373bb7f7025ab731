"""Hand-computed checks for CrossAttentionFusion."""

from __future__ import annotations

import pytest
import torch

from trimodal.modules.fusion import CrossAttentionFusion
from trimodal.modules.layers import TokenSequence


def sequence(length: int, seed: int) -> TokenSequence:
    """Random ``[2, length, 8]`` tokens with the last position of row 1 padded."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, length, dtype=torch.bool)
    mask[1, -1] = False
    return TokenSequence(torch.randn(2, length, 8, generator=generator), mask)


def test_single_modality_runs_blocks_without_context() -> None:
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, ("audio", "image", "text"), depth=2, heads=2).eval()
    text = sequence(4, 1)
    with torch.no_grad():
        x = text.tokens + fusion.type_embedding.table["text"]
        for block in fusion.blocks:
            x = block(x, text.mask)
        expected = fusion.norm(x)
    output = fusion({"text": text})
    torch.testing.assert_close(output.tokens, expected)
    assert torch.equal(output.mask, text.mask)


def test_context_is_tagged_concatenation_of_other_modalities() -> None:
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, ("audio", "image", "text"), heads=2).eval()
    inputs = {"text": sequence(3, 1), "image": sequence(5, 2), "audio": sequence(4, 3)}
    table = fusion.type_embedding.table
    with torch.no_grad():
        context = torch.cat(
            [inputs["audio"].tokens + table["audio"], inputs["image"].tokens + table["image"]], 1
        )
        context_mask = torch.cat([inputs["audio"].mask, inputs["image"].mask], 1)
        x = inputs["text"].tokens + table["text"]
        expected = fusion.norm(fusion.blocks[0](x, inputs["text"].mask, context, context_mask))
    torch.testing.assert_close(fusion(inputs).tokens, expected)


def test_first_present_modality_is_query_when_preferred_one_is_absent() -> None:
    fusion = CrossAttentionFusion(8, ("audio", "image", "text"), heads=2).eval()
    image, audio = sequence(5, 2), sequence(4, 3)
    output = fusion({"image": image, "audio": audio})
    assert output.tokens.shape == (2, 4, 8)
    assert torch.equal(output.mask, audio.mask)


def test_query_option_and_validation() -> None:
    fusion = CrossAttentionFusion(8, ("audio", "image", "text"), query="image", heads=2)
    output = fusion({"text": sequence(3, 1), "image": sequence(5, 2)})
    assert output.tokens.shape == (2, 5, 8)
    with pytest.raises(ValueError, match="query"):
        CrossAttentionFusion(8, ("audio", "text"), query="image")
