"""Text encoder: token + position embeddings, a transformer, masked-mean pooling."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.config import TextEncoderConfig
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import Pooler, TransformerStack, initial_positions


class TextEncoder(nn.Module):
    """BPE ids ``[B, L]`` (+ mask) -> :class:`EncoderOutput` with ``T = L``."""

    def __init__(
        self,
        config: TextEncoderConfig,
        vocab_size: int,
        dim: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        pool: str = "mean",
        position_init: str = "normal",
    ):
        super().__init__()
        self.max_length = config.max_length
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(
            initial_positions(position_init, config.max_length, dim)
        )
        self.transformer = TransformerStack(
            dim, config.depth, config.heads, mlp_ratio, causal=config.causal
        )
        self.pooler = Pooler(pool, dim, config.heads)
        self.projection = nn.Linear(dim, embed_dim)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, causal: bool | None = None
    ) -> EncoderOutput:
        """Encode ``ids [B, L]`` with ``mask [B, L]``; longer inputs are cut to ``max_length``.

        ``causal`` overrides ``model.text.causal`` for this call (questions may be encoded
        causally and captions not, with the same weights)."""
        ids, mask = ids[:, : self.max_length], mask[:, : self.max_length]
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]  # (B, L, D)
        tokens = self.transformer(x, mask, causal=causal)
        return EncoderOutput(tokens, mask, self.projection(self.pooler(tokens, mask)))
