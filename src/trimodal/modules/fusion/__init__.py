"""Fusion modules over any non-empty subset of modalities, plus a by-name registry.

Every module follows the contract of :class:`~trimodal.modules.fusion.base.Fusion`: a dict
``{modality: TokenSequence([B, T_m, D], [B, T_m])}`` in, one ``TokenSequence([B, T', D],
[B, T'])`` out.
"""

from __future__ import annotations

from typing import Any

from trimodal.modules.fusion.base import Fusion
from trimodal.modules.fusion.bilinear import BilinearFusion
from trimodal.modules.fusion.concat import ConcatFusion
from trimodal.modules.fusion.cross_attention import CrossAttentionFusion
from trimodal.modules.fusion.gated import GatedFusion
from trimodal.modules.fusion.tensor import LowRankTensorFusion, TensorFusion

FUSIONS: dict[str, type[Fusion]] = {
    "concat": ConcatFusion,
    "cross_attention": CrossAttentionFusion,
    "bilinear": BilinearFusion,
    "tensor": TensorFusion,
    "low_rank_tensor": LowRankTensorFusion,
    "gated": GatedFusion,
}


def build_fusion(name: str, dim: int, modalities: tuple[str, ...], **options: Any) -> Fusion:
    """Build the fusion registered as ``name``.

    Args:
        name: one of ``FUSIONS`` (``"concat"``, ``"cross_attention"``, ``"bilinear"``,
            ``"tensor"``, ``"low_rank_tensor"``, ``"gated"``).
        dim: token width ``D`` shared by every modality.
        modalities: every modality the fusion may receive.
        **options: module-specific keyword arguments (e.g. ``heads``, ``factors``, ``rank``).

    Returns:
        The fusion module.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    try:
        cls = FUSIONS[name]
    except KeyError:
        raise ValueError(f"unknown fusion {name!r}; known: {sorted(FUSIONS)}") from None
    return cls(dim, modalities, **options)


__all__ = [
    "FUSIONS",
    "BilinearFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "Fusion",
    "GatedFusion",
    "LowRankTensorFusion",
    "TensorFusion",
    "build_fusion",
]
