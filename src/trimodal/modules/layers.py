"""Building blocks: multi-head attention on ``scaled_dot_product_attention``, MLP, pre-LN block.

Masks follow one convention everywhere in trimodal: ``mask[b, t]`` is True where token ``t`` of
row ``b`` is real, False at padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TokenSequence:
    """Tokens and their mask: ``tokens [B, T, D]``, ``mask [B, T]`` (True = real token)."""

    tokens: torch.Tensor
    mask: torch.Tensor

    def select(self, rows: torch.Tensor) -> TokenSequence:
        """The sequences of batch ``rows`` (repeats allowed): ``[len(rows), T, D]``."""
        return TokenSequence(self.tokens[rows], self.mask[rows])


def attention_bias(
    key_mask: torch.Tensor | None,
    causal_length: int | None = None,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Boolean key mask ``[B, S]`` -> SDPA mask ``[B, 1, 1, S]`` (True = may attend).

    With ``causal_length`` T (self-attention, T == S) the mask is ``[B, 1, T, T]`` (``[T, T]``
    without a key mask), built on ``device``, and query ``t`` may attend to keys ``<= t`` only.
    """
    if causal_length is None:
        return None if key_mask is None else key_mask[:, None, None, :]
    causal = torch.ones(causal_length, causal_length, dtype=torch.bool, device=device).tril()
    return causal if key_mask is None else causal & key_mask[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """Multi-head attention (self or cross) computed by ``F.scaled_dot_product_attention``.

    Args:
        dim: model width ``D``; ``heads`` must divide it.
        heads: number of heads.
        kv_dim: width of the key/value input (cross-attention); defaults to ``dim``.
        dropout: attention dropout during training.
    """

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(kv_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """Attend from ``x [B, T, D]`` over ``context [B, S, Dkv]`` (``x`` itself if None).

        Args:
            key_mask: ``[B, S]`` True at real keys.
            causal: self-attention where token ``t`` sees only tokens ``<= t``.

        Returns:
            ``[B, T, D]``.
        """
        batch, length, dim = x.shape
        if causal and context is not None:
            raise ValueError("causal attention is self-attention; got a context")
        source = x if context is None else context
        q = (
            self.query(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        )  # (B, h, T, hd)
        k, v = (
            self.key_value(source)
            .view(batch, source.shape[1], 2, self.heads, self.head_dim)
            .unbind(2)
        )
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, h, S, hd)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attention_bias(key_mask, length if causal else None, q.device),
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, h, T, hd)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class MLP(nn.Module):
    """Two-layer GELU feed-forward: ``[..., D] -> [..., D]``."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.proj = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: self-attention, optional cross-attention, MLP; residual around each."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        cross_dim: int | None = None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, heads, dropout=dropout)
        self.cross_norm = nn.LayerNorm(dim) if cross_dim is not None else None
        self.cross = (
            MultiHeadAttention(dim, heads, kv_dim=cross_dim, dropout=dropout) if cross_dim else None
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """``x [B, T, D]`` with ``mask [B, T]``; optional ``context [B, S, Dc]`` -> ``[B, T, D]``.

        ``causal``: the self-attention lets token ``t`` see only tokens ``<= t``.
        """
        x = x + self.attention(self.norm1(x), key_mask=mask, causal=causal)
        if self.cross is not None and self.cross_norm is not None and context is not None:
            x = x + self.cross(self.cross_norm(x), context=context, key_mask=context_mask)
        return x + self.mlp(self.norm2(x))


class TransformerStack(nn.Module):
    """``depth`` :class:`TransformerBlock` s followed by a final LayerNorm.

    ``causal``: every self-attention lets token ``t`` see only tokens ``<= t`` (CLIP's text
    tower): word order then shapes every token, whatever the position table learns.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        causal: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool | None = None
    ) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, T, D]``; ``causal`` overrides the stack's own setting."""
        causal = self.causal if causal is None else causal
        for block in self.blocks:
            x = block(x, mask, causal=causal)
        return self.norm(x)


class AttentionPool(nn.Module):
    """A learned query attends over the tokens: ``[B, T, D]`` (+ mask) -> ``[B, D]``.

    Unlike a masked mean it can weight tokens by content and position, which matters when the
    embedding must say *where* things are ("a circle left of a star" vs the reverse).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attention = MultiHeadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool ``tokens [B, T, D]`` over real positions of ``mask [B, T]``."""
        query = self.query.expand(tokens.shape[0], -1, -1)
        return self.norm(self.attention(query, context=tokens, key_mask=mask)[:, 0])


class Pooler(nn.Module):
    """``"mean"`` (masked mean) or ``"attention"`` (:class:`AttentionPool`) pooling."""

    def __init__(self, kind: str, dim: int, heads: int):
        super().__init__()
        if kind not in ("mean", "attention"):
            raise ValueError(f"model.pool must be 'mean' or 'attention', got {kind!r}")
        self.attention = AttentionPool(dim, heads) if kind == "attention" else None

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]``, ``[B, T]`` -> ``[B, D]``."""
        if self.attention is None:
            return masked_mean(tokens, mask)
        return self.attention(tokens, mask)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: ``[B, T, D]``, ``[B, T]`` -> ``[B, D]``."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


POSITION_INITS = ("sincos", "normal")


def initial_positions(kind: str, length: int, dim: int) -> torch.Tensor:
    """Initial learned position table ``[length, dim]``.

    ``normal``: N(0, 0.02) (small next to N(0, 1) token embeddings or BatchNorm features);
    ``sincos``: the fixed sin/cos table, entries in [-1, 1], on the features' scale.
    """
    if kind == "sincos":
        return sinusoidal_positions(length, dim)
    if kind == "normal":
        return torch.randn(length, dim) * 0.02
    raise ValueError(f"model.position_init must be one of {POSITION_INITS}, got {kind!r}")


def initial_grid_positions(kind: str, grid: int, dim: int) -> torch.Tensor:
    """Initial position table ``[grid * grid, dim]`` of a row-major token grid.

    ``sincos``: the first half of the channels encodes the column, the second half the row
    (a 1-D sin/cos table each, as in MAE); ``normal`` as in :func:`initial_positions`.
    """
    if kind != "sincos" or dim % 4:
        return initial_positions(kind, grid * grid, dim)
    axis = sinusoidal_positions(grid, dim // 2)  # (g, D/2)
    columns = axis.repeat(grid, 1)  # token r * g + c -> column c
    rows = axis.repeat_interleave(grid, dim=0)  # -> row r
    return torch.cat([columns, rows], dim=1)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed sin/cos position table ``[length, dim]`` (Vaswani et al. 2017)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim)
    )
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table
