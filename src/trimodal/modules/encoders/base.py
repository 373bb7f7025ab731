"""What every encoder returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
