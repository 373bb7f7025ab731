"""Conditioning the decoder on image and audio tokens and its LM loss.

The encoders' tokens ``[B, P, dim]`` go through a projector (LayerNorm + Linear) into the
decoder width. ``model.decoder.conditioning``:

- ``prefix`` (LLaVA-style): they are placed before the text ids. Prefixes of different lengths
  (audio) are right-padded and masked; the decoder counts only real positions, so padding
  changes nothing.
- ``cross_attention``: they are the memory every decoder block attends to (they take no
  positions), as in an encoder-decoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.config import DecoderModelConfig
from trimodal.generation.sampling import generate
from trimodal.modules.decoder import DecoderConfig, DecoderLM
from trimodal.modules.layers import TokenSequence, initial_grid_positions, sinusoidal_positions

IGNORE = -100


MAX_MEMORY_POSITIONS = 1024


class PrefixProjector(nn.Module):
    """One modality's encoder tokens ``[B, P, dim]`` -> decoder inputs ``[B, P, decoder_dim]``.

    LayerNorm, then (with ``positions``) a fixed sin/cos table indexed by the token's place in
    its modality (grid cell of an image token, time of an audio token), then Linear. The table
    makes where a token sits explicit to the decoder; the encoders' own learned positions are
    small next to their features. With ``grid`` an image's tokens (a square, row-major grid)
    take the 2-D table of :func:`~trimodal.modules.layers.initial_grid_positions` instead:
    column and row each in half of the channels, so that "left of" is a comparison of one
    half.
    """

    positions: torch.Tensor | None

    def __init__(self, dim: int, decoder_dim: int, positions: bool = False, grid: bool = False):
        super().__init__()
        if grid and (not positions or dim % 4):
            raise ValueError(
                "model.decoder.memory_grid needs memory_positions and a width divisible by 4, "
                f"got memory_positions={positions} and width {dim}"
            )
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, decoder_dim)
        self.grid = grid
        table = sinusoidal_positions(MAX_MEMORY_POSITIONS, dim) if positions else None
        self.register_buffer("positions", table, persistent=False)

    def forward(self, tokens: torch.Tensor, modality: str = "audio") -> torch.Tensor:
        """Project each token ``[B, P, dim]`` of one modality (``image`` or ``audio``)."""
        x = self.norm(tokens)
        if self.positions is None:
            return self.linear(x)
        count = x.shape[1]
        if modality == "image" and self.grid:
            side = math.isqrt(count)
            if side * side != count:
                raise ValueError(f"memory_grid needs a square image grid, got {count} tokens")
            return self.linear(x + initial_grid_positions("sincos", side, x.shape[2]).to(x))
        if count > MAX_MEMORY_POSITIONS:
            raise ValueError(
                f"{count} encoder tokens exceed the {MAX_MEMORY_POSITIONS} memory positions"
            )
        return self.linear(x + self.positions[:count])


CONDITIONING = ("prefix", "cross_attention")


def build_decoder(config: DecoderModelConfig, vocab_size: int) -> DecoderLM:
    """A :class:`DecoderLM` over the trimodal tokenizer's vocabulary."""
    if config.conditioning not in CONDITIONING:
        raise ValueError(
            f"model.decoder.conditioning must be one of {CONDITIONING}, got {config.conditioning!r}"
        )
    return DecoderLM(
        DecoderConfig(
            vocab_size=vocab_size,
            max_positions=config.max_positions,
            dim=config.dim,
            depth=config.depth,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            positions=config.positions,
            cross_attention=config.conditioning == "cross_attention",
        )
    )


@dataclass(frozen=True)
class DecoderInputs:
    """Projected encoder tokens placed as ``decoder`` reads them, beside the text's mask.

    Attributes:
        prefix: ``[B, P, Dd]`` before the text (prefix conditioning), else None.
        attention_mask: ``[B, (P +) T]`` over the prefix (if any) and the text.
        memory: ``[B, M, Dd]`` for cross-attention, else None.
        memory_mask: ``[B, M]`` True at real memory tokens, else None.
    """

    prefix: torch.Tensor | None
    attention_mask: torch.Tensor
    memory: torch.Tensor | None = None
    memory_mask: torch.Tensor | None = None

    @property
    def prefix_length(self) -> int:
        """Positions the prefix takes before the text (0 without one)."""
        return 0 if self.prefix is None else self.prefix.shape[1]


def condition(
    decoder: DecoderLM, tokens: TokenSequence | None, text_mask: torch.Tensor
) -> DecoderInputs:
    """Hand projected ``tokens`` to ``decoder`` as a prefix or as memory; ``text_mask [B, T]``."""
    if tokens is None:
        return DecoderInputs(None, text_mask)
    if decoder.config.cross_attention:
        return DecoderInputs(None, text_mask, tokens.tokens, tokens.mask)
    return DecoderInputs(tokens.tokens, torch.cat([tokens.mask, text_mask], dim=1))


MODALITY_PARTS = ("image", "audio")


def join_prefixes(parts: Sequence[TokenSequence]) -> TokenSequence:
    """Concatenate per-modality prefixes along the token axis (e.g. image then question audio)."""
    return TokenSequence(
        torch.cat([p.tokens for p in parts], dim=1), torch.cat([p.mask for p in parts], dim=1)
    )


def teacher_forcing_batch(
    rows: Sequence[Sequence[int]],
    targets: Sequence[Sequence[bool]],
    pad_id: int,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``ids [B, T]``, ``mask [B, T]`` and ``labels [B, T]`` (IGNORE off-target),
    built on the host and moved to ``device`` (default: the CPU) in one copy each."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long, device="cpu")
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long, device="cpu")
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device="cpu")
    for i, (row, target) in enumerate(zip(rows, targets, strict=True)):
        values = torch.tensor(row, dtype=torch.long, device="cpu")
        ids[i, : len(row)] = values
        mask[i, : len(row)] = True
        chosen = torch.tensor(target, dtype=torch.bool, device="cpu")
        labels[i, : len(row)] = values.masked_fill(~chosen, IGNORE)
    target_device = device or torch.device("cpu")
    return tuple(t.to(target_device, non_blocking=True) for t in (ids, mask, labels))  # type: ignore[return-value]


def lm_loss(
    decoder: DecoderLM,
    prefix: TokenSequence,
    rows: Sequence[Sequence[int]],
    targets: Sequence[Sequence[bool]],
    pad_id: int,
) -> torch.Tensor:
    """Mean next-token cross-entropy over target tokens, given a projected prefix.

    Args:
        prefix: projected tokens ``[B, P, Dd]`` and mask ``[B, P]``.
        rows: token ids of each conversation (see :func:`trimodal.generation.chat.render_ids`).
        targets: per id, whether it is predicted (assistant reply tokens).
    """
    return next_token_loss(decoder, *text_states(decoder, prefix, rows, targets, pad_id))


def text_states(
    decoder: DecoderLM,
    prefix: TokenSequence,
    rows: Sequence[Sequence[int]],
    targets: Sequence[Sequence[bool]],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's final states at the text positions ``[B, T, Dd]`` (right-padded rows) and
    the labels ``[B, T]`` (each target id, ``IGNORE`` elsewhere); arguments as :func:`lm_loss`."""
    ids, mask, labels = teacher_forcing_batch(rows, targets, pad_id, prefix.tokens.device)
    inputs = condition(decoder, prefix, mask)
    hidden = decoder.features(
        ids,
        inputs.prefix,
        inputs.attention_mask,
        memory=inputs.memory,
        memory_mask=inputs.memory_mask,
    )
    return hidden[:, inputs.prefix_length :], labels


def next_token_loss(decoder: DecoderLM, states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each target label from the state before it (:func:`text_states`)."""
    text_hidden = states[:, :-1]  # (B, T - 1, Dd); t predicts id t + 1
    predicted = labels[:, 1:] != IGNORE  # (B, T - 1)
    if not bool(predicted.any()):
        return states.sum() * 0.0
    # The vocabulary matmul only where a token is predicted (not at prefix or prompt positions).
    return F.cross_entropy(decoder.lm_head(text_hidden[predicted]), labels[:, 1:][predicted])


@torch.no_grad()
def generate_replies(
    decoder: DecoderLM,
    prefix: TokenSequence | None,
    rows: Sequence[Sequence[int]],
    pad_id: int,
    eos_id: int,
    max_new_tokens: int = 40,
    **sampling: object,
) -> list[list[int]]:
    """Continue each conversation (ending in ``assistant:``) until ``<eos>``; new ids per row.

    Prompts are left-padded after the prefix: ``[prefix | pad | prompt]``; padded positions are
    masked and not counted, so each row decodes as if alone.
    """
    length = max(len(r) for r in rows)
    device = decoder.lm_head.weight.device
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long, device="cpu")
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device="cpu")
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.tensor(row, dtype=torch.long, device="cpu")
        mask[i, length - len(row) :] = True
    ids, mask = ids.to(device), mask.to(device)
    inputs = condition(decoder, prefix, mask)
    room = decoder.config.max_positions - int(inputs.attention_mask.sum(1).max())
    produced = generate(
        decoder,
        ids,
        inputs.prefix,
        attention_mask=inputs.attention_mask,
        memory=inputs.memory,
        memory_mask=inputs.memory_mask,
        max_new_tokens=max(1, min(max_new_tokens, room)),
        stop_tokens=(eos_id,),
        pad_id=pad_id,
        **sampling,  # type: ignore[arg-type]
    )
    replies = []
    for row in produced.tolist():
        reply = []
        for token in row:
            if token == eos_id:
                break
            reply.append(token)
        replies.append(reply)
    return replies
