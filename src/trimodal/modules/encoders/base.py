"""What every encoder returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trimodal.modules.layers import TokenSequence


@dataclass(frozen=True)
class EncoderOutput:
    """``tokens [B, T, D]``, ``mask [B, T]`` (True = real), ``pooled [B, E]`` (shared space, unnormalized)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def sequence(self) -> TokenSequence:
        """The tokens and mask, as fusion modules take them."""
        return TokenSequence(self.tokens, self.mask)


MIN_GROUP_ROWS = 16
MIN_SAVING = 0.9
"""Group only when the groups' padded steps are at most this fraction of the whole batch's."""


def encode_in_length_groups(
    encode: Callable[[torch.Tensor, torch.Tensor], EncoderOutput],
    inputs: torch.Tensor,
    mask: torch.Tensor,
    groups: int,
) -> EncoderOutput:
    """``encode(inputs, mask)`` over groups of rows of similar length, reassembled in order.

    Rows are sorted by length (``mask.sum(-1)``) and cut into up to ``groups`` groups of at
    least :data:`MIN_GROUP_ROWS` rows; each group's inputs are trimmed to its longest row
    before encoding (one plain call when that would not cut the padded steps by 10%). For a
    padding-invariant ``encode`` the result equals one padded call (up to float rounding):
    tokens ``[B, T, D]`` are padded back to the longest group's ``T``.

    Args:
        inputs: ``[B, ..., L]``, time on the last axis (token ids ``[B, L]`` or log-mel
            ``[B, n_mels, L]``).
        mask: ``[B, L]`` True at real steps.
    """
    count = min(groups, inputs.shape[0] // MIN_GROUP_ROWS)
    if count <= 1:
        return encode(inputs, mask)
    lengths = mask.sum(-1)
    order = lengths.argsort(stable=True)
    chunks = order.chunk(count)
    grouped_steps = sum(len(rows) * int(lengths[rows].max()) for rows in chunks)
    if grouped_steps > MIN_SAVING * inputs.shape[0] * mask.shape[-1]:
        return encode(inputs, mask)  # rows of about one length: grouping saves too little
    outputs = []
    for rows in chunks:
        longest = max(1, int(lengths[rows].max()))
        outputs.append(encode(inputs[rows][..., :longest], mask[rows][:, :longest]))
    steps = max(output.tokens.shape[1] for output in outputs)
    tokens = torch.cat([F.pad(o.tokens, (0, 0, 0, steps - o.tokens.shape[1])) for o in outputs])
    token_mask = torch.cat([F.pad(o.mask, (0, steps - o.mask.shape[1])) for o in outputs])
    pooled = torch.cat([output.pooled for output in outputs])
    restore = order.argsort()
    return EncoderOutput(tokens[restore], token_mask[restore], pooled[restore])
