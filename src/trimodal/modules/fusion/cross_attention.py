"""Cross-attention fusion: one query modality attends over the other present modalities."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.modules.fusion.base import Fusion
from trimodal.modules.fusion.concat import ModalityEmbedding, concat_sequences
from trimodal.modules.layers import TokenSequence, TransformerBlock


class CrossAttentionFusion(Fusion):
    """Query tokens pass through ``depth`` blocks of self-attn, cross-attn over context, MLP.

    The context is the concatenation (sorted order) of every other present modality's tokens,
    each tagged with its type embedding; their masks are the cross-attention key mask. When the
    ``query`` modality is absent, the first present modality (sorted) takes the query role; when
    no other modality is present the blocks run without cross-attention. Output: the updated
    query tokens ``[B, T_query, D]`` (after a final LayerNorm) with the query mask.

    Args:
        dim: token width ``D``.
        modalities: every modality this fusion may receive.
        query: the preferred query modality.
        depth: number of :class:`TransformerBlock` s.
        heads: attention heads (must divide ``dim``).
    """

    def __init__(
        self,
        dim: int,
        modalities: tuple[str, ...] = ("audio", "image", "text"),
        query: str = "text",
        depth: int = 1,
        heads: int = 4,
    ):
        super().__init__(dim, modalities)
        if query not in self.modalities:
            raise ValueError(f"query modality {query!r} is not one of {self.modalities}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.query = query
        self.type_embedding = ModalityEmbedding(dim, self.modalities)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, cross_dim=dim) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def query_name(self, present: list[str]) -> str:
        """The modality playing the query role among the sorted ``present`` names."""
        return self.query if self.query in present else present[0]

    def context(self, inputs: dict[str, TokenSequence], query: str) -> TokenSequence | None:
        """Tagged concatenation ``[B, S, D]`` / ``[B, S]`` of non-query modalities, or None."""
        others = [
            TokenSequence(self.type_embedding(name, seq.tokens), seq.mask)
            for name, seq in inputs.items()
            if name != query
        ]
        return concat_sequences(others) if others else None

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse ``{m: TokenSequence([B, T_m, D], [B, T_m])}`` -> ``[B, T_query, D]``."""
        query = self.query_name(list(inputs))
        mask = inputs[query].mask.bool()
        x = self.type_embedding(query, inputs[query].tokens)
        context = self.context(inputs, query)
        context_tokens: torch.Tensor | None = None if context is None else context.tokens
        context_mask: torch.Tensor | None = None if context is None else context.mask
        for block in self.blocks:
            x = block(x, mask, context=context_tokens, context_mask=context_mask)
        return TokenSequence(self.norm(x), mask)
