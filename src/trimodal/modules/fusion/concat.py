"""Concatenation fusion: tag each modality's tokens with a learned type embedding, then concat."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.modules.fusion.base import Fusion
from trimodal.modules.layers import TokenSequence


class ModalityEmbedding(nn.Module):
    """One learned ``[D]`` type vector per modality, added to that modality's tokens.

    Args:
        dim: token width ``D``.
        modalities: the modality names that get an embedding.
    """

    def __init__(self, dim: int, modalities: tuple[str, ...]):
        super().__init__()
        self.table = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(dim) * 0.02) for name in modalities}
        )

    def forward(self, name: str, tokens: torch.Tensor) -> torch.Tensor:
        """Add the type vector of ``name``: ``[B, T, D]`` -> ``[B, T, D]``."""
        return tokens + self.table[name]


def concat_sequences(sequences: list[TokenSequence]) -> TokenSequence:
    """Concatenate along time: tokens ``[B, T_i, D]`` -> ``[B, sum T_i, D]``, masks likewise."""
    tokens = torch.cat([seq.tokens for seq in sequences], dim=1)
    mask = torch.cat([seq.mask.bool() for seq in sequences], dim=1)
    return TokenSequence(tokens, mask)


class ConcatFusion(Fusion):
    """Concatenate the present modalities' tokens (sorted order) after adding type embeddings.

    Output: ``tokens [B, sum_m T_m, D]`` and the concatenated masks ``[B, sum_m T_m]``.

    Args:
        dim: token width ``D``.
        modalities: every modality this fusion may receive.
    """

    def __init__(self, dim: int, modalities: tuple[str, ...] = ("audio", "image", "text")):
        super().__init__(dim, modalities)
        self.type_embedding = ModalityEmbedding(dim, self.modalities)

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse ``{m: TokenSequence([B, T_m, D], [B, T_m])}`` -> ``[B, sum T_m, D]``."""
        tagged = [
            TokenSequence(self.type_embedding(name, seq.tokens), seq.mask)
            for name, seq in inputs.items()
        ]
        return concat_sequences(tagged)
