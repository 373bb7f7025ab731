"""Gated multimodal units (GMU, Arevalo et al. 2017), kept token-wise over any modality set."""

from __future__ import annotations

import torch
from torch import nn

from trimodal.modules.fusion.base import Fusion
from trimodal.modules.fusion.concat import ModalityEmbedding, concat_sequences
from trimodal.modules.layers import TokenSequence, masked_mean


class GatedFusion(Fusion):
    """Softmax-gate each present modality, then concatenate its gated, tanh-projected tokens.

    For each present modality ``m``: pooled ``p_m = masked_mean(tokens_m) [B, D]``; gate logit
    ``l_m = Linear_m([p_m, mean_n p_n]) [B]`` (mean over present modalities); weights
    ``g = softmax_m(l) [B, M]``. Tokens become ``g_m * tanh(Linear_m(tokens_m)) + type_m`` and are
    concatenated in sorted order with their masks. Output: ``[B, sum_m T_m, D]``, ``[B, sum T_m]``.

    Args:
        dim: token width ``D``.
        modalities: every modality this fusion may receive.
    """

    def __init__(self, dim: int, modalities: tuple[str, ...] = ("audio", "image", "text")):
        super().__init__(dim, modalities)
        self.projections = nn.ModuleDict({name: nn.Linear(dim, dim) for name in self.modalities})
        self.gates = nn.ModuleDict({name: nn.Linear(2 * dim, 1) for name in self.modalities})
        self.type_embedding = ModalityEmbedding(dim, self.modalities)

    def gate_weights(self, inputs: dict[str, TokenSequence]) -> torch.Tensor:
        """Softmax gate over the present modalities (dict order): ``[B, M]``."""
        pooled = {name: masked_mean(seq.tokens, seq.mask) for name, seq in inputs.items()}
        average = torch.stack(list(pooled.values())).mean(0)  # (B, D)
        logits = [
            self.gates[name](torch.cat([vector, average], dim=-1))
            for name, vector in pooled.items()
        ]  # M x (B, 1)
        return torch.cat(logits, dim=-1).softmax(dim=-1)

    def gated_tokens(self, name: str, tokens: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``weight [B] * tanh(Linear_m(tokens [B, T, D])) + type_m`` -> ``[B, T, D]``."""
        projected = torch.tanh(self.projections[name](tokens))
        return self.type_embedding(name, weight[:, None, None] * projected)

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse ``{m: TokenSequence([B, T_m, D], [B, T_m])}`` -> ``[B, sum T_m, D]``."""
        weights = self.gate_weights(inputs)  # (B, M)
        gated = [
            TokenSequence(self.gated_tokens(name, seq.tokens, weights[:, index]), seq.mask)
            for index, (name, seq) in enumerate(inputs.items())
        ]
        return concat_sequences(gated)
