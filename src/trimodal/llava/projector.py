"""The bridge from a trimodal image tower to a pretrained LLM's input embeddings."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.generation.conditioning import PrefixProjector


class ImagePrefix(nn.Module):
    """Image tokens ``[B, T, dim]`` (a square, row-major grid) -> LLM inputs ``[B, T, llm_dim]``.

    LLaVA-1.5's two-layer MLP (Linear, GELU, Linear) after a LayerNorm; with ``positions`` the
    2-D sin/cos grid table is added before the first layer (each token's column and row in half
    of the channels), so that where an object sits stays legible to the LLM, which has never
    seen an image grid.
    """

    def __init__(self, dim: int, llm_dim: int, positions: bool = True):
        super().__init__()
        self.first = PrefixProjector(dim, llm_dim, positions=positions, grid=positions)
        self.second = nn.Sequential(nn.GELU(), nn.Linear(llm_dim, llm_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, dim]`` -> ``[B, T, llm_dim]``."""
        return self.second(self.first(tokens, "image"))
