"""Hand-computed checks for ConcatFusion."""

from __future__ import annotations

import torch

from trimodal.modules.fusion import ConcatFusion
from trimodal.modules.layers import TokenSequence


def test_concat_adds_type_embedding_and_concatenates_in_sorted_order() -> None:
    torch.manual_seed(0)
    fusion = ConcatFusion(4, ("text", "audio", "image"))
    text = TokenSequence(torch.randn(2, 3, 4), torch.tensor([[True, True, False]] * 2))
    audio = TokenSequence(torch.randn(2, 2, 4), torch.tensor([[True, False], [True, True]]))
    output = fusion({"text": text, "audio": audio})
    table = fusion.type_embedding.table
    expected = torch.cat([audio.tokens + table["audio"], text.tokens + table["text"]], dim=1)
    torch.testing.assert_close(output.tokens, expected)
    assert torch.equal(output.mask, torch.cat([audio.mask, text.mask], dim=1))


def test_type_embeddings_differ_per_modality() -> None:
    fusion = ConcatFusion(8, ("audio", "image", "text"))
    table = fusion.type_embedding.table
    assert not torch.equal(table["audio"], table["text"])
