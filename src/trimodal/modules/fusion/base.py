"""The fusion contract shared by every fusion module.

``forward(inputs)`` takes a dict ``{modality: TokenSequence(tokens [B, T_m, D], mask [B, T_m])}``
with **any non-empty subset** of modalities (a missing modality is an absent key, never zeros)
and returns one ``TokenSequence(tokens [B, T', D], mask [B, T'])``. Modalities are processed in
sorted key order so the result never depends on dict insertion order. All inputs share width D.
"""

from __future__ import annotations

from torch import nn

from trimodal.modules.layers import TokenSequence


class Fusion(nn.Module):
    """Base class: subclasses implement :meth:`fuse` over a non-empty, sorted dict."""

    def __init__(self, dim: int, modalities: tuple[str, ...]):
        super().__init__()
        self.dim = dim
        self.modalities = tuple(sorted(modalities))

    def forward(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Validate and fuse; see the module docstring for shapes."""
        if not inputs:
            raise ValueError("fusion needs at least one modality")
        unknown = set(inputs) - set(self.modalities)
        if unknown:
            raise ValueError(
                f"unknown modalities {sorted(unknown)}; this fusion knows {self.modalities}"
            )
        batch = {seq.tokens.shape[0] for seq in inputs.values()}
        if len(batch) != 1:
            raise ValueError(
                f"modalities disagree on batch size: { {k: v.tokens.shape[0] for k, v in inputs.items()} }"
            )
        return self.fuse({name: inputs[name] for name in sorted(inputs)})

    def fuse(self, inputs: dict[str, TokenSequence]) -> TokenSequence:
        """Fuse a non-empty dict already in sorted order."""
        raise NotImplementedError
