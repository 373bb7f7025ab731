"""Text encoder: token + position embeddings, a transformer, masked-mean pooling."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.config import TextEncoderConfig
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import Pooler, TransformerStack, initial_positions


class TextLayers(nn.Module):
    """What every text encoder runs on its input vectors: learned positions, a transformer
    (causal or not), a pooler and the projection into the shared space. Subclasses make the
    vectors (token embeddings, or a pretrained tower's states) and call :meth:`encode_vectors`.
    """

    def build_layers(
        self,
        config: TextEncoderConfig,
        dim: int,
        embed_dim: int,
        mlp_ratio: float,
        pool: str,
        position_init: str,
    ) -> None:
        """Create the layers (as attributes, so their weights keep their checkpoint names)."""
        self.max_length = config.max_length
        self.position_embedding = nn.Parameter(
            initial_positions(position_init, config.max_length, dim)
        )
        self.transformer = TransformerStack(
            dim, config.depth, config.heads, mlp_ratio, causal=config.causal
        )
        self.pooler = Pooler(pool, dim, config.heads)
        self.projection = nn.Linear(dim, embed_dim)

    def encode_vectors(
        self, x: torch.Tensor, mask: torch.Tensor, causal: bool | None = None
    ) -> EncoderOutput:
        """Input vectors ``x [B, T, D]`` (T <= max_length) with ``mask [B, T]`` ->
        :class:`EncoderOutput`; ``causal`` overrides ``model.text.causal`` for this call."""
        x = x + self.position_embedding[: x.shape[1]]
        tokens = self.transformer(x, mask, causal=causal)  # (B, T, D)
        return EncoderOutput(tokens, mask, self.projection(self.pooler(tokens, mask)))


class TextEncoder(TextLayers):
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
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.build_layers(config, dim, embed_dim, mlp_ratio, pool, position_init)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, causal: bool | None = None
    ) -> EncoderOutput:
        """Encode ``ids [B, L]`` with ``mask [B, L]``; longer inputs are cut to ``max_length``.

        ``causal`` overrides ``model.text.causal`` for this call (questions may be encoded
        causally and captions not, with the same weights)."""
        ids, mask = ids[:, : self.max_length], mask[:, : self.max_length]
        return self.encode_vectors(self.token_embedding(ids), mask, causal)
