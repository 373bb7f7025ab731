"""Cross-attention conditioning: parity with transformers' GPT-2 ``add_cross_attention``, the
KV cache with a memory, and the conditioned LM loss against a per-row reference."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trimodal.generation.conditioning import lm_loss
from trimodal.generation.gpt2 import load_gpt2
from trimodal.generation.sampling import generate
from trimodal.modules.decoder import DecoderConfig, DecoderLM
from trimodal.modules.layers import TokenSequence

transformers = pytest.importorskip("transformers")

VOCAB, DIM = 60, 32


@pytest.fixture(scope="module")
def hf_cross() -> transformers.GPT2LMHeadModel:
    """A random tiny GPT-2 whose blocks cross-attend to encoder states."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=DIM,
        vocab_size=VOCAB,
        n_positions=32,
        add_cross_attention=True,
        initializer_range=0.2,
    )
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def ours_cross(
    hf_cross: transformers.GPT2LMHeadModel, tmp_path_factory: pytest.TempPathFactory
) -> DecoderLM:
    folder: Path = tmp_path_factory.mktemp("gpt2_cross")
    hf_cross.save_pretrained(folder)
    return load_gpt2(folder)


def memory_batch(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory ``[3, 5, DIM]`` with rows of 5, 2 and 4 real tokens (right-padded)."""
    memory = torch.randn(3, 5, DIM, generator=torch.Generator().manual_seed(seed))
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 4])[:, None]
    return memory, mask


def test_cross_attention_logits_match_transformers(
    hf_cross: transformers.GPT2LMHeadModel, ours_cross: DecoderLM
) -> None:
    assert ours_cross.config.cross_attention
    ids = torch.randint(0, VOCAB, (3, 7), generator=torch.Generator().manual_seed(1))
    memory, mask = memory_batch()
    with torch.no_grad():
        expected = hf_cross(
            ids, encoder_hidden_states=memory, encoder_attention_mask=mask.long()
        ).logits
        logits, _ = ours_cross(ids, memory=memory, memory_mask=mask)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_padded_memory_equals_each_row_alone(ours_cross: DecoderLM) -> None:
    ids = torch.randint(0, VOCAB, (3, 6), generator=torch.Generator().manual_seed(2))
    memory, mask = memory_batch()
    with torch.no_grad():
        batched, _ = ours_cross(ids, memory=memory, memory_mask=mask)
        alone, _ = ours_cross(ids[1:2], memory=memory[1:2, :2])
    torch.testing.assert_close(batched[1:2], alone, atol=1e-5, rtol=0)


def test_cached_and_uncached_greedy_agree_with_memory(ours_cross: DecoderLM) -> None:
    ids = torch.randint(1, VOCAB, (3, 4), generator=torch.Generator().manual_seed(4))
    memory, mask = memory_batch()
    options = {"memory": memory, "memory_mask": mask, "max_new_tokens": 12}
    cached = generate(ours_cross, ids, **options)
    assert torch.equal(cached, generate(ours_cross, ids, use_cache=False, **options))
    without = generate(ours_cross, ids, max_new_tokens=12)  # text only: no cross-attention
    assert not torch.equal(cached, without)


def test_memory_errors_name_the_problem(ours_cross: DecoderLM) -> None:
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="at least one real"):
        ours_cross(ids, memory=torch.randn(2, 2, DIM), memory_mask=torch.tensor([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"memory must be \[B=2, M, 32\]"):
        ours_cross(ids, memory=torch.randn(2, 2, 8))
    plain = DecoderLM(DecoderConfig(vocab_size=VOCAB, dim=DIM, depth=1, heads=2))
    with pytest.raises(ValueError, match="no cross-attention"):
        plain(ids, memory=torch.randn(2, 2, DIM))


def test_cross_attention_lm_loss_matches_a_per_row_reference() -> None:
    torch.manual_seed(0)
    config = DecoderConfig(
        vocab_size=VOCAB, max_positions=16, dim=DIM, depth=2, heads=2, cross_attention=True
    )
    decoder = DecoderLM(config).eval()
    memory, mask = memory_batch()
    rows = [[1, 5, 6, 7, 2], [1, 8, 2], [1, 9, 10, 11, 2]]
    targets = [
        [False, False, True, True, True],
        [False, True, True],
        [False, True, False, True, True],
    ]
    expected, count = 0.0, 0
    for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
        logits, _ = decoder(torch.tensor([row]), memory=memory[i : i + 1][:, mask[i]])
        for t in range(1, len(row)):
            if target[t]:
                expected -= logits[0, t - 1].log_softmax(-1)[row[t]].item()
                count += 1
    got = lm_loss(decoder, TokenSequence(memory, mask), rows, targets, pad_id=0).item()
    assert math.isclose(got, expected / count, rel_tol=1e-5)


def test_cross_attention_trains_every_parameter() -> None:
    config = DecoderConfig(vocab_size=VOCAB, dim=DIM, depth=2, heads=2, cross_attention=True)
    decoder = DecoderLM(config).train()
    memory, mask = memory_batch()
    loss = lm_loss(
        decoder, TokenSequence(memory, mask), [[1, 4, 5, 2]] * 3, [[False, True, True, True]] * 3, 0
    )
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder.parameters())
