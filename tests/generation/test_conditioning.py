"""Decoder conditioning: the LM loss against a per-row reference, the projector, options."""

from __future__ import annotations

import math

import pytest
import torch

from trimodal.config import DecoderModelConfig
from trimodal.generation.conditioning import (
    PrefixProjector,
    build_decoder,
    lm_loss,
    teacher_forcing_batch,
)
from trimodal.modules.decoder import DecoderConfig, DecoderLM
from trimodal.modules.layers import TokenSequence, sinusoidal_positions


def naive_lm_loss(
    decoder: DecoderLM, prefix: TokenSequence, rows: list[list[int]], targets: list[list[bool]]
) -> float:
    """Each row alone (its real prefix, no padding): mean -log p(next id) over target ids."""
    total, count = 0.0, 0
    for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
        real = prefix.tokens[i][prefix.mask[i]][None]  # (1, P_i, D)
        logits, _ = decoder(torch.tensor([row]), prefix=real)
        text = logits[0, real.shape[1] :]  # (T_i, V)
        for t in range(1, len(row)):
            if target[t]:
                total -= text[t - 1].log_softmax(-1)[row[t]].item()
                count += 1
    return total / count


def test_lm_loss_matches_a_per_row_reference() -> None:
    torch.manual_seed(0)
    decoder = DecoderLM(DecoderConfig(vocab_size=50, max_positions=32, dim=16, depth=2, heads=2))
    decoder.eval()
    tokens = torch.randn(3, 4, 16)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    prefix = TokenSequence(tokens, mask)
    rows = [[1, 5, 6, 7, 2], [1, 8, 2], [1, 9, 10, 11, 12, 13, 2]]
    targets = [
        [False, False, True, True, True],
        [False, True, True],
        [False, False, False, True, False, True, True],
    ]
    got = lm_loss(decoder, prefix, rows, targets, pad_id=0).item()
    assert math.isclose(got, naive_lm_loss(decoder, prefix, rows, targets), rel_tol=1e-5)


def test_lm_loss_without_targets_is_zero_and_differentiable() -> None:
    decoder = DecoderLM(DecoderConfig(vocab_size=20, max_positions=16, dim=8, depth=1, heads=2))
    prefix = TokenSequence(torch.randn(1, 2, 8), torch.ones(1, 2, dtype=torch.bool))
    loss = lm_loss(decoder, prefix, [[1, 3, 4]], [[False, False, False]], pad_id=0)
    loss.backward()
    assert loss.item() == 0.0


def test_teacher_forcing_batch_pads_right_and_ignores_non_targets() -> None:
    ids, mask, labels = teacher_forcing_batch(
        [[1, 4, 5], [1, 6]], [[False, True, True], [False, True]], 0
    )
    assert ids.tolist() == [[1, 4, 5], [1, 6, 0]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    assert labels.tolist() == [[-100, 4, 5], [-100, 6, -100]]


def test_projector_positions_restart_per_modality() -> None:
    torch.manual_seed(0)
    plain, positioned = PrefixProjector(8, 6), PrefixProjector(8, 6, positions=True)
    positioned.load_state_dict(plain.state_dict())
    tokens = torch.randn(2, 5, 8)
    normed = torch.nn.functional.layer_norm(tokens, (8,))
    expected = normed @ plain.linear.weight.T + plain.linear.bias
    torch.testing.assert_close(plain(tokens), expected)
    table = sinusoidal_positions(5, 8)
    shifted = (normed + table) @ plain.linear.weight.T + plain.linear.bias
    torch.testing.assert_close(positioned(tokens), shifted)
    # each part counts from 0: the second part's first token gets row 0 of the table
    later = torch.nn.functional.layer_norm(tokens[:, 3:], (8,)) + table[:2]
    torch.testing.assert_close(
        positioned(tokens[:, 3:]), later @ plain.linear.weight.T + plain.linear.bias
    )


def test_grid_positions_give_image_tokens_their_column_and_row() -> None:
    """Image token r * 3 + c of a 3x3 grid gets, by hand, sin/cos of its column c in channels
    0-3 and of its row r in channels 4-7 (frequencies 1 and 1/100 in a half of width 4)."""
    torch.manual_seed(0)
    plain, grid = PrefixProjector(8, 6), PrefixProjector(8, 6, positions=True, grid=True)
    grid.load_state_dict(plain.state_dict())
    tokens = torch.randn(2, 9, 8)
    normed = torch.nn.functional.layer_norm(tokens, (8,))
    table = torch.zeros(9, 8)
    for index in range(9):
        row, column = divmod(index, 3)
        for half, place in ((0, column), (4, row)):
            for k, frequency in enumerate((1.0, 0.01)):
                table[index, half + 2 * k] = math.sin(place * frequency)
                table[index, half + 2 * k + 1] = math.cos(place * frequency)
    expected = (normed + table) @ plain.linear.weight.T + plain.linear.bias
    torch.testing.assert_close(grid(tokens, "image"), expected)
    # audio keeps the 1-D table
    one_d = (normed + sinusoidal_positions(9, 8)) @ plain.linear.weight.T + plain.linear.bias
    torch.testing.assert_close(grid(tokens, "audio"), one_d)
    with pytest.raises(ValueError, match="square image grid"):
        grid(tokens[:, :8], "image")
    with pytest.raises(ValueError, match="memory_grid needs memory_positions"):
        PrefixProjector(8, 6, positions=False, grid=True)


def test_unknown_conditioning_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"model\.decoder\.conditioning"):
        build_decoder(DecoderModelConfig(depth=1, conditioning="film"), vocab_size=10)
    assert build_decoder(
        DecoderModelConfig(depth=1, conditioning="cross_attention"), 10
    ).config.cross_attention
