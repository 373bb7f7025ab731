"""Cross-attention fusion with learned sink tokens in its context (``sinks``)."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch

from trimodal.modules.fusion.cross_attention import CrossAttentionFusion
from trimodal.modules.layers import TokenSequence

DIM, BATCH = 16, 3
MODALITIES = ("audio", "image", "text")
SUBSETS = [c for size in (1, 2, 3) for c in combinations(MODALITIES, size)]


def fusion_with(sinks: int) -> CrossAttentionFusion:
    """A seeded fusion in eval mode; the same seed gives the same blocks for any ``sinks``."""
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(DIM, MODALITIES, query="text", sinks=0)
    if sinks:
        weights = fusion.state_dict()
        fusion = CrossAttentionFusion(DIM, MODALITIES, query="text", sinks=sinks)
        fusion.load_state_dict(weights, strict=False)
        with torch.no_grad():
            fusion.sinks.normal_(generator=torch.Generator().manual_seed(1))  # type: ignore[union-attr]
    return fusion.eval()


def question_and_copies(copies: int) -> dict[str, TokenSequence]:
    """A fixed 4-token question and an image context made of ``copies`` of one token."""
    generator = torch.Generator().manual_seed(2)
    question = torch.randn(BATCH, 4, DIM, generator=generator)
    token = torch.randn(BATCH, 1, DIM, generator=generator)
    image = token.expand(-1, copies, -1)
    return {
        "text": TokenSequence(question, torch.ones(BATCH, 4, dtype=torch.bool)),
        "image": TokenSequence(image, torch.ones(BATCH, copies, dtype=torch.bool)),
    }


def test_without_a_sink_attention_cannot_count_identical_tokens() -> None:
    # Softmax over k copies of one key gives each copy 1/k of the weight and the same output:
    # one object or three look alike. A sink keeps some weight back, and that share depends on k.
    plain, sunk = fusion_with(0), fusion_with(1)
    with torch.no_grad():
        plain_one = plain(question_and_copies(1)).tokens
        plain_three = plain(question_and_copies(3)).tokens
        sunk_one = sunk(question_and_copies(1)).tokens
        sunk_three = sunk(question_and_copies(3)).tokens
    torch.testing.assert_close(plain_one, plain_three, rtol=0, atol=1e-5)
    assert (sunk_one - sunk_three).abs().max() > 1e-3


def test_a_query_alone_does_not_use_the_sinks() -> None:
    plain, sunk = fusion_with(0), fusion_with(2)
    text = question_and_copies(1)["text"]
    with torch.no_grad():
        torch.testing.assert_close(sunk({"text": text}).tokens, plain({"text": text}).tokens)


@pytest.mark.parametrize("subset", SUBSETS, ids=lambda s: "+".join(s))
def test_contract_holds_with_sinks(subset: tuple[str, ...]) -> None:
    fusion = fusion_with(1)
    generator = torch.Generator().manual_seed(3)
    inputs = {}
    for name, length in zip(MODALITIES, (5, 7, 3), strict=True):
        if name in subset:
            tokens = torch.randn(BATCH, length, DIM, generator=generator).requires_grad_()
            mask = torch.ones(BATCH, length, dtype=torch.bool)
            mask[0, 1:] = False  # row 0 has one real token: padding must not leak
            inputs[name] = TokenSequence(tokens, mask)
    output = fusion(inputs)
    query = "text" if "text" in subset else subset[0]
    assert output.tokens.shape == (BATCH, inputs[query].tokens.shape[1], DIM)
    assert torch.equal(output.mask, inputs[query].mask)
    output.tokens[output.mask].sum().backward()
    for sequence in inputs.values():
        assert sequence.tokens.grad is not None and sequence.tokens.grad.abs().sum() > 0
    assert fusion.sinks is not None
    used = len(subset) > 1
    assert (fusion.sinks.grad is not None and fusion.sinks.grad.abs().sum() > 0) == used
    # Batch order: permuting rows permutes the output rows.
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        permuted = fusion(
            {n: TokenSequence(s.tokens[order], s.mask[order]) for n, s in inputs.items()}
        )
        torch.testing.assert_close(permuted.tokens, output.tokens.detach()[order])


def test_negative_sinks_are_refused() -> None:
    with pytest.raises(ValueError, match="sinks"):
        CrossAttentionFusion(DIM, MODALITIES, sinks=-1)
