"""Length-grouped encoding: the same outputs and gradients as one padded batch."""

from __future__ import annotations

import torch

from trimodal.config import AudioEncoderConfig, TextEncoderConfig
from trimodal.modules.encoders.audio import AudioEncoder
from trimodal.modules.encoders.base import EncoderOutput, encode_in_length_groups
from trimodal.modules.encoders.text import TextEncoder


def _lengths_mask(lengths: list[int], steps: int) -> torch.Tensor:
    return torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]


def test_groups_reassemble_rows_in_order_and_trim_each_group() -> None:
    lengths = [(7 * i) % 40 + 1 for i in range(48)]
    mask = _lengths_mask(lengths, 40)
    inputs = torch.arange(48.0)[:, None].expand(48, 40).contiguous()
    seen_widths = []

    def encode(x: torch.Tensor, m: torch.Tensor) -> EncoderOutput:
        seen_widths.append(x.shape[1])
        # Token t of a row carries (row id, t); pooled is the row's length.
        tokens = torch.stack([x, torch.arange(x.shape[1]).expand_as(x).float()], dim=-1)
        return EncoderOutput(tokens, m, m.sum(-1, keepdim=True).float())

    out = encode_in_length_groups(encode, inputs, mask, groups=3)
    assert len(seen_widths) == 3 and max(seen_widths) == 40 and min(seen_widths) < 20
    assert out.pooled[:, 0].tolist() == [float(n) for n in lengths]
    assert torch.equal(out.mask, mask)
    assert torch.equal(out.tokens[..., 0][mask], inputs[mask])
    # Fewer rows than two groups of 16: one plain call.
    seen_widths.clear()
    encode_in_length_groups(encode, inputs[:31], mask[:31], groups=3)
    assert seen_widths == [40]
    # Rows of nearly one length: grouping would save under 10% of the steps, so one call.
    seen_widths.clear()
    nearly_full = _lengths_mask([40] * 44 + [37] * 4, 40)
    encode_in_length_groups(encode, inputs, nearly_full, groups=3)
    assert seen_widths == [40]


def _check_same_as_one_batch(
    encoder: torch.nn.Module, inputs: torch.Tensor, mask: torch.Tensor
) -> None:
    whole = encoder(inputs, mask)
    grads_whole = torch.autograd.grad(
        whole.pooled.square().sum() + whole.tokens[whole.mask].sum(), list(encoder.parameters())
    )
    grouped = encode_in_length_groups(encoder, inputs, mask, groups=4)
    grads_grouped = torch.autograd.grad(
        grouped.pooled.square().sum() + grouped.tokens[grouped.mask].sum(),
        list(encoder.parameters()),
    )
    assert torch.equal(grouped.mask, whole.mask)
    assert torch.allclose(grouped.pooled, whole.pooled, atol=1e-5)
    assert torch.allclose(grouped.tokens[whole.mask], whole.tokens[whole.mask], atol=1e-5)
    for a, b in zip(grads_grouped, grads_whole, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_grouped_audio_encoding_matches_one_padded_batch() -> None:
    torch.manual_seed(0)
    config = AudioEncoderConfig(subsample=8, stack=4, depth=1, heads=2)
    encoder = AudioEncoder(config, n_mels=8, dim=16, embed_dim=8)
    lengths = [120] + [int(n) for n in torch.randint(5, 120, (63,))]  # no all-padding column
    mask = _lengths_mask(lengths, 120)
    _check_same_as_one_batch(encoder, torch.randn(64, 8, 120) * mask[:, None], mask)


def test_grouped_text_encoding_matches_one_padded_batch() -> None:
    torch.manual_seed(0)
    encoder = TextEncoder(TextEncoderConfig(depth=1, heads=2), vocab_size=30, dim=16, embed_dim=8)
    lengths = [20] + [int(n) for n in torch.randint(1, 20, (39,))]
    mask = _lengths_mask(lengths, 20)
    ids = torch.randint(1, 30, (40, 20)).masked_fill(~mask, 0)
    _check_same_as_one_batch(encoder, ids, mask)
