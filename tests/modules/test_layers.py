"""Attention and blocks against naive implementations written here."""

from __future__ import annotations

import math

import pytest
import torch

from trimodal.modules.layers import (
    AttentionPool,
    MultiHeadAttention,
    Pooler,
    TransformerStack,
    initial_grid_positions,
    initial_positions,
    masked_mean,
    sinusoidal_positions,
)


def naive_attention(
    module: MultiHeadAttention, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor
) -> torch.Tensor:
    """Loop over batch, heads and queries computing softmax(q.k / sqrt(d)) v by hand."""
    batch, length, dim = x.shape
    heads, head_dim = module.heads, module.head_dim
    q = module.query(x)
    kv = module.key_value(context)
    k, v = kv[..., :dim], kv[..., dim:]
    out = torch.zeros(batch, length, dim)
    for b in range(batch):
        for h in range(heads):
            sl = slice(h * head_dim, (h + 1) * head_dim)
            for t in range(length):
                scores = []
                for s in range(context.shape[1]):
                    if key_mask[b, s]:
                        scores.append(float(q[b, t, sl] @ k[b, s, sl]) / math.sqrt(head_dim))
                    else:
                        scores.append(float("-inf"))
                weights = torch.softmax(torch.tensor(scores), dim=0)
                out[b, t, sl] = sum(weights[s] * v[b, s, sl] for s in range(context.shape[1]))
    return module.out(out)


def test_attention_matches_naive_loops_with_masks() -> None:
    torch.manual_seed(0)
    module = MultiHeadAttention(8, heads=2, kv_dim=6).eval()
    x, context = torch.randn(2, 3, 8), torch.randn(2, 5, 6)
    key_mask = torch.tensor([[True, True, True, False, False], [True, False, True, True, True]])
    with torch.no_grad():
        expected = naive_attention(module, x, context, key_mask)
        actual = module(x, context=context, key_mask=key_mask)
    assert torch.allclose(actual, expected, atol=1e-5)


def test_padding_does_not_leak_into_real_tokens() -> None:
    torch.manual_seed(1)
    stack = TransformerStack(16, depth=2, heads=4).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    changed = x.clone()
    changed[0, 4:] = 100.0
    with torch.no_grad():
        a, b = stack(x, mask), stack(changed, mask)
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-5) and torch.allclose(a[1], b[1])


def test_masked_mean_and_positions_by_hand() -> None:
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(tokens, mask).tolist() == [[2.0, 3.0]]
    table = sinusoidal_positions(3, 4)
    assert table[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert math.isclose(float(table[2, 0]), math.sin(2.0), abs_tol=1e-6)
    assert math.isclose(float(table[2, 3]), math.cos(2.0 / 100.0), abs_tol=1e-6)


def test_attention_pool_ignores_padding_and_matches_a_naive_softmax() -> None:
    torch.manual_seed(2)
    pool = AttentionPool(8, heads=1).eval()
    tokens = torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, True, False]])
    changed = tokens.clone()
    changed[0, 3] = 50.0
    with torch.no_grad():
        pooled = pool(tokens, mask)
        assert torch.allclose(pooled, pool(changed, mask), atol=1e-6)
        attention = pool.attention
        q = attention.query(pool.query)[0, 0]
        k, v = attention.key_value(tokens[0, :3]).split(8, dim=-1)
        weights = torch.softmax(k @ q / math.sqrt(8), dim=0)
        expected = pool.norm(attention.out(weights @ v))
    assert torch.allclose(pooled[0], expected, atol=1e-5)


def test_pooler_kinds() -> None:
    tokens, mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    assert torch.equal(Pooler("mean", 8, 2)(tokens, mask), masked_mean(tokens, mask))
    assert Pooler("attention", 8, 2)(tokens, mask).shape == (2, 8)
    with pytest.raises(ValueError, match=r"model\.pool"):
        Pooler("max", 8, 2)


def test_grid_positions_encode_column_then_row() -> None:
    table = initial_grid_positions("sincos", 3, 8)  # (9, 8): channels 0-3 column, 4-7 row
    axis = sinusoidal_positions(3, 4)
    for token in range(9):
        row, column = divmod(token, 3)
        torch.testing.assert_close(table[token], torch.cat([axis[column], axis[row]]))
    assert torch.equal(initial_positions("sincos", 5, 8), sinusoidal_positions(5, 8))


def test_normal_positions_are_small_and_unknown_kinds_are_refused() -> None:
    torch.manual_seed(0)
    assert initial_grid_positions("normal", 4, 64).std().item() == pytest.approx(0.02, rel=0.2)
    with pytest.raises(ValueError, match=r"model\.position_init"):
        initial_positions("learned", 4, 8)


def test_causal_attention_matches_a_naive_lower_triangular_softmax() -> None:
    torch.manual_seed(2)
    module = MultiHeadAttention(8, heads=2).eval()
    x = torch.randn(2, 5, 8)
    key_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        actual = module(x, key_mask=key_mask, causal=True)
        for t in range(5):
            # query t sees keys 0..t (and only real ones): the naive loop over that prefix
            prefix_mask = key_mask & (torch.arange(5) <= t)
            expected = naive_attention(module, x[:, t : t + 1], x, prefix_mask)
            assert torch.allclose(actual[:, t : t + 1], expected, atol=1e-5)


def test_a_causal_stack_never_looks_ahead_and_sees_word_order() -> None:
    torch.manual_seed(3)
    stack = TransformerStack(16, depth=2, heads=4, causal=True).eval()
    x = torch.randn(1, 6, 16)
    changed = x.clone()
    changed[0, 4:] = torch.randn(2, 16)
    swapped = x[:, [1, 0, 2, 3, 4, 5]]
    with torch.no_grad():
        a, b, c = stack(x), stack(changed), stack(swapped)
        bidirectional = TransformerStack(16, depth=2, heads=4).eval()
        bidirectional.load_state_dict(stack.state_dict())
        d, e = bidirectional(x), bidirectional(swapped)
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-6)  # tokens 0-3 ignore tokens 4-5
    assert not torch.allclose(a[0, 4:], b[0, 4:], atol=1e-3)
    # swapping the first two tokens changes the last token of a causal stack, and nothing
    # but the swapped rows of a bidirectional one without positions (a bag of words)
    assert not torch.allclose(a[0, 5], c[0, 5], atol=1e-3)
    assert torch.allclose(d[0, 2:], e[0, 2:], atol=1e-5)


def test_causal_cross_attention_is_refused() -> None:
    module = MultiHeadAttention(8, heads=2)
    with pytest.raises(ValueError, match="causal attention is self-attention"):
        module(torch.randn(1, 2, 8), context=torch.randn(1, 3, 8), causal=True)
