"""Low-rank bilinear pooling (MLB, Kim et al. 2017; MFB, Yu et al. 2017) over any modality set."""

from __future__ import annotations

from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.modules.fusion.base import Fusion
from trimodal.modules.layers import TokenSequence, masked_mean


def signed_sqrt(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Power normalisation ``sign(x) * sqrt(|x| + eps)`` (finite gradient at 0); any shape."""
    return x.sign() * (x.abs() + eps).sqrt()


def single_token(vector: torch.Tensor) -> TokenSequence:
    """``[B, D]`` -> TokenSequence with tokens ``[B, 1, D]`` and an all-True mask ``[B, 1]``."""
    mask = torch.ones(vector.shape[0], 1, dtype=torch.bool, device=vector.device)
    return TokenSequence(vector.unsqueeze(1), mask)


class BilinearFusion(Fusion):
    """Factorised bilinear pooling of the present modalities into one token.

    Each present modality is masked-mean pooled to ``[B, D]`` and projected to
    ``[B, factors * hidden]``; the projections are multiplied elementwise across the present
    modalities (a single modality is just its projection), sum-pooled over the ``factors`` groups
    to ``[B, hidden]``, signed-square-rooted, L2-normalised and mapped to ``[B, D]``.
    Output: ``tokens [B, 1, D]``, ``mask [B, 1]`` all True.

    Args:
        dim: token width ``D``.
        modalities: every modality this fusion may receive.
        factors: rank ``k`` of the factorisation (size of each sum-pooling window).
        hidden: width ``o`` of the pooled bilinear feature; defaults to ``dim``.
    """

    def __init__(
        self,
        dim: int,
        modalities: tuple[str, ...] = ("audio", "image", "text"),
        factors: int = 4,
        hidden: int | None = None,
    ):
        super().__init__(dim, modalities)
        self.factors = factors
        self.hidden = hidden if hidden is not None else dim
        self.projections = nn.ModuleDict(
            {name: nn.Linear(dim, factors * self.hidden) for name in self.modalities}
        )
        self.out = nn.Linear(self.hidden, dim)

    def joint(self, inputs: dict[str, TokenSequence]) -> torch.Tensor:
        """Elementwise product of the pooled projections: ``[B, factors * hidden]``."""
        projected = [
            self.projections[name](masked_mean(seq.tokens, seq.mask))
            for name, seq in inputs.items()
        ]
        return reduce(torch.mul, projected)

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse ``{m: TokenSequence([B, T_m, D], [B, T_m])}`` -> ``[B, 1, D]``."""
        joint = self.joint(inputs)
        pooled = joint.view(joint.shape[0], self.hidden, self.factors).sum(-1)  # (B, hidden)
        normalised = F.normalize(signed_sqrt(pooled), dim=-1)
        return single_token(self.out(normalised))
