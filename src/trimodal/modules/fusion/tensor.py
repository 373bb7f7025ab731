"""Tensor fusion (TFN, Zadeh et al. 2017) and its low-rank factorisation (LMF, Liu et al. 2018)."""

from __future__ import annotations

from functools import reduce
from itertools import combinations

import torch
from torch import nn

from trimodal.modules.fusion.base import Fusion
from trimodal.modules.fusion.bilinear import single_token
from trimodal.modules.layers import TokenSequence, masked_mean


def subset_key(names: list[str] | tuple[str, ...]) -> str:
    """Key of a modality subset, e.g. ``"audio+image+text"`` (names sorted)."""
    return "+".join(sorted(names))


def all_subsets(modalities: tuple[str, ...]) -> list[str]:
    """Keys of every non-empty subset of ``modalities``."""
    return [
        subset_key(chosen)
        for size in range(1, len(modalities) + 1)
        for chosen in combinations(sorted(modalities), size)
    ]


def append_one(z: torch.Tensor) -> torch.Tensor:
    """``[B, r]`` -> ``[B, r + 1]`` with a constant 1 appended (keeps unimodal terms)."""
    return torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)


def outer_flatten(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched outer product, flattened: ``[B, p]``, ``[B, q]`` -> ``[B, p * q]``."""
    return (a.unsqueeze(2) * b.unsqueeze(1)).flatten(1)


class TensorFusion(Fusion):
    """TFN: outer product of the present modalities' ``[z_m, 1]`` vectors, mapped to one token.

    Each present modality is masked-mean pooled and projected to ``[B, reduced]``; a 1 is appended
    and the batched outer product over the present modalities (sorted order) is flattened to
    ``[B, (reduced + 1) ** k]``. An output Linear specific to the present subset maps it to
    ``[B, D]``, so an absent modality is genuinely absent rather than zeros.
    Output: ``tokens [B, 1, D]``, ``mask [B, 1]`` all True.

    Args:
        dim: token width ``D``.
        modalities: every modality this fusion may receive.
        reduced: per-modality width before the outer product.
    """

    def __init__(
        self,
        dim: int,
        modalities: tuple[str, ...] = ("audio", "image", "text"),
        reduced: int = 8,
    ):
        super().__init__(dim, modalities)
        self.reduced = reduced
        self.projections = nn.ModuleDict(
            {name: nn.Linear(dim, reduced) for name in self.modalities}
        )
        self.heads = nn.ModuleDict(
            {
                key: nn.Linear((reduced + 1) ** (key.count("+") + 1), dim)
                for key in all_subsets(self.modalities)
            }
        )

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse ``{m: TokenSequence([B, T_m, D], [B, T_m])}`` -> ``[B, 1, D]``."""
        vectors = [
            append_one(self.projections[name](masked_mean(seq.tokens, seq.mask)))
            for name, seq in inputs.items()
        ]
        fused = reduce(outer_flatten, vectors)  # (B, (reduced + 1) ** k)
        return single_token(self.heads[subset_key(list(inputs))](fused))


class LowRankTensorFusion(Fusion):
    """LMF: the TFN weight tensor factorised into ``rank`` per-modality factors.

    With ``z'_m = [z_m, 1]`` of shape ``[B, reduced + 1]`` and factors ``W_m [rank, reduced + 1,
    D]``, the output is ``sum_r prod_{m present} (z'_m @ W_m[r]) + bias`` of shape ``[B, D]``,
    which equals TFN with weight ``W[i_1, ..., i_k, d] = sum_r prod_m W_m[r, i_m, d]`` restricted
    to the present modalities. Output: ``tokens [B, 1, D]``, ``mask [B, 1]`` all True.

    Args:
        dim: token width ``D``.
        modalities: every modality this fusion may receive.
        reduced: per-modality width before fusion.
        rank: number of rank-one terms.
    """

    def __init__(
        self,
        dim: int,
        modalities: tuple[str, ...] = ("audio", "image", "text"),
        reduced: int = 16,
        rank: int = 4,
    ):
        super().__init__(dim, modalities)
        self.rank = rank
        self.projections = nn.ModuleDict(
            {name: nn.Linear(dim, reduced) for name in self.modalities}
        )
        self.factors = nn.ParameterDict(
            {name: nn.Parameter(torch.empty(rank, reduced + 1, dim)) for name in self.modalities}
        )
        self.bias = nn.Parameter(torch.zeros(dim))
        for factor in self.factors.values():
            nn.init.xavier_normal_(factor)

    def modality_factor(self, name: str, seq: TokenSequence) -> torch.Tensor:
        """``[z_m, 1] @ W_m[r]`` for every rank ``r``: ``[B, rank, D]``."""
        z = append_one(self.projections[name](masked_mean(seq.tokens, seq.mask)))
        return torch.einsum("bi,rid->brd", z, self.factors[name])

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse ``{m: TokenSequence([B, T_m, D], [B, T_m])}`` -> ``[B, 1, D]``."""
        product = reduce(
            torch.mul, [self.modality_factor(name, seq) for name, seq in inputs.items()]
        )  # (B, rank, D)
        return single_token(product.sum(1) + self.bias)
