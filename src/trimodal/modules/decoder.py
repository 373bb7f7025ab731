"""GPT-style decoder LM with a preallocated KV cache.

Batched generation lives in :mod:`trimodal.generation.sampling`, GPT-2 checkpoint loading in
:mod:`trimodal.generation.gpt2`.

One call sees ``[prefix (P embeddings) | ids (T tokens)]``. The prefix is the LLaVA-style
conditioning hook: image/audio tokens already projected to the decoder width ``D``; it counts
toward positions like any token.

Padding: batched prompts of different lengths are **left**-padded and described by a boolean
``attention_mask`` (True = real, the trimodal convention). Padded keys are masked out of
attention and positions count real tokens only (``cumsum(mask) - 1``, as transformers' GPT-2
``generate`` does), so a padded row gets the same logits as the row alone. The last position of
every row must be real: the next token is read from it.

KV cache: :class:`KVCache` preallocates ``[depth, B, H, capacity, head_dim]`` keys and values
once; each call writes its new keys in place and attends over a view of the filled part, so a
decoding step neither allocates nor copies the past (concatenation would copy it every step).

Cross-attention (``DecoderConfig.cross_attention``, GPT-2's ``add_cross_attention``): each block
also attends from its tokens to a ``memory [B, M, D]`` of conditioning tokens (encoder outputs)
between self-attention and MLP. Memory takes no positions; its keys and values are computed once
per generation and kept in the cache. A call without memory (and none cached) skips the
cross-attention sublayers, so text-only prompts still work.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.hardware import interleaved_best_seconds

POSITION_KINDS = ("learned", "rotary")
NORM_KINDS = ("layer", "rms")
MLP_KINDS = ("gelu", "swiglu")
ACTIVATIONS = {"gelu_new": "tanh", "gelu": "none"}  # name -> F.gelu(approximate=...)


@dataclass
class DecoderConfig:
    """Sizes and options of :class:`DecoderLM` (defaults: a small CPU-friendly model).

    Attributes:
        vocab_size: number of token ids ``V``.
        max_positions: longest sequence (prefix + prompt + generated) the model accepts.
        dim: model width ``D``; ``heads`` must divide it.
        depth: number of blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim`` (unless ``mlp_hidden`` is set).
        mlp_hidden: explicit MLP hidden width (GPT-2's ``n_inner``).
        dropout: embedding, attention and residual dropout while training.
        positions: ``"learned"`` (GPT-2's absolute table) or ``"rotary"`` (RoPE on q and k).
        tie_embeddings: the LM head shares the token embedding's weight.
        layer_norm_eps: LayerNorm epsilon (GPT-2: 1e-5).
        activation: ``"gelu_new"`` (tanh approximation, GPT-2's) or ``"gelu"`` (exact erf).
        rotary_base: RoPE frequency base.
        cross_attention: every block also attends over a conditioning memory (see the module
            docstring).
        kv_heads: key/value heads for grouped-query attention (Llama's
            ``num_key_value_heads``); must divide ``heads``; None = ``heads`` (multi-head).
        norm: ``"layer"`` (LayerNorm, GPT-2) or ``"rms"`` (RMSNorm, Llama); ``layer_norm_eps``
            is its epsilon either way.
        mlp: ``"gelu"`` (GPT-2's two-layer MLP, ``activation``) or ``"swiglu"`` (Llama's
            ``down(silu(gate(x)) * up(x))``).
        bias: the linear layers have biases (GPT-2) or not (Llama).
    """

    vocab_size: int = 4096
    max_positions: int = 256
    dim: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    mlp_hidden: int | None = None
    dropout: float = 0.0
    positions: str = "learned"
    tie_embeddings: bool = True
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_new"
    rotary_base: float = 10_000.0
    cross_attention: bool = False
    kv_heads: int | None = None
    norm: str = "layer"
    mlp: str = "gelu"
    bias: bool = True

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"DecoderConfig.dim {self.dim} is not divisible by heads {self.heads}")
        if self.positions not in POSITION_KINDS:
            raise ValueError(
                f"DecoderConfig.positions must be one of {POSITION_KINDS}, got {self.positions!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"DecoderConfig.activation must be one of {tuple(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        if self.norm not in NORM_KINDS:
            raise ValueError(f"DecoderConfig.norm must be one of {NORM_KINDS}, got {self.norm!r}")
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"DecoderConfig.mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        if self.heads % self.key_value_heads:
            raise ValueError(
                f"DecoderConfig.kv_heads {self.kv_heads} must divide heads {self.heads}"
            )
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        """Width of one head: ``dim // heads``."""
        return self.dim // self.heads

    @property
    def key_value_heads(self) -> int:
        """Heads of keys and values: ``kv_heads``, or ``heads`` without grouping."""
        return self.kv_heads or self.heads

    @property
    def hidden(self) -> int:
        """MLP hidden width."""
        return self.mlp_hidden or int(self.dim * self.mlp_ratio)


@dataclass
class KVCache:
    """Preallocated keys and values of every layer, filled left to right.

    Attributes:
        keys: ``[depth, B, H_kv, capacity, head_dim]`` (``H_kv``: key/value heads); positions
            ``[:length]`` are filled.
        values: same shape as ``keys``.
        length: filled positions (prefix + tokens seen so far).
        key_mask: ``[B, capacity]`` True at real positions; None while every position so far
            is real, which lets attention run without a mask.
        memory: per layer, the cross-attention keys and values ``[B, H, M, hd]`` of the
            conditioning memory, stored by the call that received it; None without one.
        memory_mask: SDPA mask ``[B, 1, 1, M]`` of that memory (None = all real).
    """

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0
    key_mask: torch.Tensor | None = None
    memory: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    memory_mask: torch.Tensor | None = None

    @classmethod
    def allocate(
        cls,
        config: DecoderConfig,
        batch: int,
        capacity: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
    ) -> KVCache:
        """An empty cache for ``batch`` rows of up to ``capacity`` positions."""
        shape = (config.depth, batch, config.key_value_heads, capacity, config.head_dim)
        return cls(
            torch.empty(shape, dtype=dtype, device=device),
            torch.empty(shape, dtype=dtype, device=device),
        )

    @property
    def capacity(self) -> int:
        """Most positions the cache can hold."""
        return self.keys.shape[3]

    def write(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``key, value [B, H, T, hd]`` after the filled part of ``layer``.

        Returns:
            That layer's keys and values ``[B, H, length + T, hd]`` (views, no copy).
            ``length`` advances once per model call, after the last layer.
        """
        end = self.length + key.shape[2]
        self.keys[layer, :, :, self.length : end] = key
        self.values[layer, :, :, self.length : end] = value
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def record_mask(self, mask: torch.Tensor | None, new: int) -> torch.Tensor | None:
        """Remember ``mask [B, new]`` (None = all real) for the next ``new`` positions.

        Returns:
            The key mask ``[B, length + new]``, or None while no position is padding.
        """
        if self.key_mask is None:
            if mask is None:
                return None
            self.key_mask = torch.ones(
                self.keys.shape[1], self.capacity, dtype=torch.bool, device=mask.device
            )
        end = self.length + new
        self.key_mask[:, self.length : end] = True if mask is None else mask
        return self.key_mask[:, :end]


@dataclass(frozen=True)
class _Attend:
    """What every block needs in one call: RoPE tables, SDPA masks, cache, memory."""

    rotary: tuple[torch.Tensor, torch.Tensor] | None  # cos, sin: (B|1, 1, T, hd)
    mask: torch.Tensor | None  # (B|1, 1, T, S) bool, True = may attend
    is_causal: bool
    cache: KVCache | None
    memory: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # per layer (B, h, M, hd)
    memory_mask: torch.Tensor | None = None  # (B, 1, 1, M) bool


class Rotary(nn.Module):
    """RoPE tables (rotate-half form) at the positions of :func:`position_index`.

    Returns ``cos, sin`` broadcastable to ``[B, H, T, hd]``: ``[1, T, hd]`` for a slice,
    ``[B, 1, T, hd]`` for per-row positions ``[B, T]``.
    """

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_positions: int, base: float):
        super().__init__()
        inverse = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_positions, dtype=torch.float32), inverse)
        angles = torch.cat([angles, angles], dim=-1)  # (L, hd)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables at ``positions``."""
        return self.cos[positions].unsqueeze(-3), self.sin[positions].unsqueeze(-3)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, T, hd]`` by the angles whose ``cos, sin`` broadcast to it."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class DecoderLinear(nn.Module):
    """Affine map ``[..., in] -> [..., out]`` whose weight is stored ``kernel [in, out]``.

    GPT-2's ``Conv1D`` layout, one ``addmm`` a call. A decoding step multiplies a few rows by
    every weight of the model, and reading the weight in this layout is faster than
    ``nn.Linear``'s ``weight [out, in]``: 7-10% more greedy tokens/s for the whole decoder at
    batch 1 and 16 (docs/generation.md). Checkpoints written with ``nn.Linear``'s
    ``weight [out, in]`` still load: the weight is transposed into ``kernel`` on load.
    """

    bias: nn.Parameter | None

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.normal_(self.kernel, 0.0, 0.02)
        self.register_load_state_dict_pre_hook(_linear_weight_to_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., in]`` -> ``x @ kernel (+ bias)`` ``[..., out]``."""
        flat = x.reshape(-1, x.shape[-1])
        out = measured_split_product(flat, self.kernel)
        if out is not None:
            out = out if self.bias is None else out + self.bias
        elif self.bias is None:
            out = flat @ self.kernel
        else:
            out = torch.addmm(self.bias, flat, self.kernel)
        return out.view(*x.shape[:-1], self.kernel.shape[1])


SPLIT_MAX_ROWS = 64
"""Decoding steps of at most this many rows take :func:`split_vector_matmul`'s path."""
SPLIT_MARGIN = 1.1
"""The split path is taken only where it measured at least this much faster than the BLAS."""


def measured_split_product(
    rows: torch.Tensor, kernel: torch.Tensor, transposed: bool = False
) -> torch.Tensor | None:
    """:func:`split_vector_matmul` where it applies *and* :func:`split_pays` on this CPU;
    None otherwise (the caller then takes the plain product)."""
    if not _split_applies(rows) or not split_pays():
        return None
    return split_vector_matmul(rows, kernel, transposed)


def _split_applies(rows: torch.Tensor) -> bool:
    """A decoding step's rows ``[R, in]`` on a CPU with 2+ threads, outside autograd."""
    return (
        0 < rows.shape[0] <= SPLIT_MAX_ROWS
        and rows.device.type == "cpu"
        and torch.get_num_threads() >= 2
        and not torch.is_grad_enabled()
    )


def split_pays() -> bool:
    """Whether splitting a one-row product across threads beats this CPU's BLAS, measured once
    per process and thread count (about 20 ms). It differs by machine: on an AVX2 EPYC the BLAS
    keeps a row on one thread and the split streams 1.3-1.9x faster; on an AMX Xeon the BLAS
    uses both threads and the split was 0.3-0.8x (docs/performance.md)."""
    return _split_verdict(torch.get_num_threads())


@functools.cache
def _split_verdict(threads: int) -> bool:
    if threads < 2:
        return False
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG (sampling) alone
    row = torch.randn(1, 1024, generator=generator)
    kernel = torch.randn(1024, 2048, generator=generator)

    def eight(product: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:  # eight products: long enough to time a ~50 µs product
            for _ in range(8):
                product()

        return run

    with torch.no_grad():
        plain, split = interleaved_best_seconds(
            eight(lambda: row @ kernel), eight(lambda: split_vector_matmul(row, kernel)), 3
        )
    return split * SPLIT_MARGIN <= plain


def split_vector_matmul(
    rows: torch.Tensor, kernel: torch.Tensor, transposed: bool = False
) -> torch.Tensor | None:
    """A few rows times a weight, the output columns split across the CPU's threads; None
    when that does not apply (more than :data:`SPLIT_MAX_ROWS` rows, a GPU, one thread,
    autograd, columns that do not split evenly).

    A decoding step multiplies a handful of rows (the batch) by every weight, bound by how
    fast the weight streams from memory; for so few rows the BLAS keeps the product on one
    thread (measured: about half the machine's read bandwidth at one row). Cut into one ``bmm``
    batch per thread (a view of the same weight, column block ``t`` for thread ``t``) it
    streams on all of them: 1.3-1.9x per product from 1 to 16 rows on 2 threads here
    (docs/performance.md). Every output is still one whole dot product, so the values are
    the same up to the BLAS kernel's own summation order.

    Args:
        rows: ``[R, in]``.
        kernel: ``[in, out]``, or ``[out, in]`` with ``transposed`` (``nn.Linear``'s layout).

    Returns:
        ``[R, out]``.
    """
    if not _split_applies(rows):
        return None
    threads = torch.get_num_threads()
    count = rows.shape[0]
    columns = kernel.shape[0] if transposed else kernel.shape[1]
    if columns % threads or not kernel.is_contiguous():
        return None
    width = columns // threads
    if transposed:  # [out, in] -> per thread [in, width]
        blocks = kernel.view(threads, width, kernel.shape[1]).transpose(1, 2)
    else:  # [in, out] -> per thread [in, width]
        blocks = kernel.view(kernel.shape[0], threads, width).transpose(0, 1)
    parts = torch.bmm(rows.expand(threads, count, rows.shape[1]), blocks)  # [threads, R, width]
    return parts.view(1, columns) if count == 1 else parts.transpose(0, 1).reshape(count, columns)


def _linear_weight_to_kernel(
    module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *_: object
) -> None:
    """Load hook: an ``nn.Linear``-layout ``weight [out, in]`` becomes ``kernel [in, out]``."""
    if prefix + "weight" in state and prefix + "kernel" not in state:
        state[prefix + "kernel"] = state.pop(prefix + "weight").t()


class CausalSelfAttention(nn.Module):
    """Causal multi-head (or grouped-query) self-attention on SDPA, writing its keys into an
    optional KV cache. With ``kv_heads < heads`` each key/value head serves
    ``heads // kv_heads`` query heads, and the cache holds only the key/value heads."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.heads, self.head_dim, self.dropout = config.heads, config.head_dim, config.dropout
        self.kv_heads = config.key_value_heads
        width = (self.heads + 2 * self.kv_heads) * self.head_dim
        self.qkv = DecoderLinear(config.dim, width, config.bias)
        self.out = DecoderLinear(config.dim, config.dim, config.bias)
        self.residual_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, attend: _Attend, layer: int) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, T, D]``."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(
            [
                self.heads * self.head_dim,
                self.kv_heads * self.head_dim,
                self.kv_heads * self.head_dim,
            ],
            dim=-1,
        )
        q = q.view(batch, length, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, hd)
        k = k.view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)  # (B, h_kv, T, hd)
        v = v.view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        if attend.rotary is not None:
            q, k = apply_rotary(q, *attend.rotary), apply_rotary(k, *attend.rotary)
        if attend.cache is not None:
            k, v = attend.cache.write(layer, k, v)  # (B, h_kv, S, hd), S = past + T
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attend.mask,
            is_causal=attend.is_causal,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.kv_heads != self.heads,
        )  # (B, h, T, hd)
        return self.residual_dropout(self.out(y.transpose(1, 2).reshape(batch, length, dim)))


class CrossAttention(nn.Module):
    """Multi-head attention from the tokens ``[B, T, D]`` to a memory ``[B, M, D]``."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.heads, self.head_dim, self.dropout = config.heads, config.head_dim, config.dropout
        self.query = DecoderLinear(config.dim, config.dim)
        self.key_value = DecoderLinear(config.dim, 2 * config.dim)
        self.out = DecoderLinear(config.dim, config.dim)
        self.residual_dropout = nn.Dropout(config.dropout)

    def memory_keys(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``[B, H, M, hd]`` of ``memory [B, M, D]`` (once per generation)."""
        batch, length, _ = memory.shape
        kv = self.key_value(memory).view(batch, length, 2, self.heads, self.head_dim)
        key, value = kv.permute(2, 0, 3, 1, 4).unbind(0)
        return key, value

    def forward(
        self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``x [B, T, D]`` over the memory's keys/values and ``mask [B, 1, 1, M]`` -> ``[B, T, D]``."""
        batch, length, dim = x.shape
        q = self.query(x).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, *memory, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, T, hd)
        return self.residual_dropout(self.out(y.transpose(1, 2).reshape(batch, length, dim)))


class DecoderMLP(nn.Module):
    """GELU feed-forward ``[..., D] -> [..., D]`` (tanh-approximate GELU for ``gelu_new``)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.fc = DecoderLinear(config.dim, config.hidden, config.bias)
        self.proj = DecoderLinear(config.hidden, config.dim, config.bias)
        self.approximate = ACTIVATIONS[config.activation]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate=self.approximate)))


class GatedMLP(nn.Module):
    """SwiGLU feed-forward ``[..., D] -> [..., D]``: ``proj(silu(gate(x)) * up(x))``, the gate
    and up projections fused into one ``gate_up`` matmul (Llama's MLP)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.gate_up = DecoderLinear(config.dim, 2 * config.hidden, config.bias)
        self.proj = DecoderLinear(config.hidden, config.dim, config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # each (..., hidden)
        return self.dropout(self.proj(F.silu(gate) * up))


def make_norm(config: DecoderConfig) -> nn.Module:
    """The block's normalization: LayerNorm or RMSNorm over ``dim`` (``config.norm``)."""
    if config.norm == "rms":
        return nn.RMSNorm(config.dim, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.dim, eps=config.layer_norm_eps)


class DecoderBlock(nn.Module):
    """Pre-norm block: causal self-attention, (cross-attention,) MLP; a residual each."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.norm1 = make_norm(config)
        self.attention = CausalSelfAttention(config)
        if config.cross_attention:
            self.norm_cross = make_norm(config)
            self.cross = CrossAttention(config)
        self.norm2 = make_norm(config)
        self.mlp: nn.Module = GatedMLP(config) if config.mlp == "swiglu" else DecoderMLP(config)

    def forward(self, x: torch.Tensor, attend: _Attend, layer: int) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, T, D]``."""
        x = x + self.attention(self.norm1(x), attend, layer)
        if attend.memory is not None:
            x = x + self.cross(self.norm_cross(x), attend.memory[layer], attend.memory_mask)
        return x + self.mlp(self.norm2(x))


class DecoderLM(nn.Module):
    """GPT-style language model; see the module docstring for prefix, padding and cache."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.dim)
        learned = config.positions == "learned"
        self.position_embedding = (
            nn.Embedding(config.max_positions, config.dim) if learned else None
        )
        self.rotary = (
            None if learned else Rotary(config.head_dim, config.max_positions, config.rotary_base)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(DecoderBlock(config) for _ in range(config.depth))
        self.norm = make_norm(config)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self._init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02), zero biases; residual projections N(0, 0.02/sqrt(2*depth))."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, DecoderLinear):
                nn.init.normal_(module.kernel, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * self.config.depth)
        for name, parameter in self.named_parameters():
            if name.endswith(("attention.out.kernel", "cross.out.kernel", "mlp.proj.kernel")):
                nn.init.normal_(parameter, 0.0, residual_std)

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """An empty :class:`KVCache` on this model's device and dtype."""
        weight = self.token_embedding.weight
        return KVCache.allocate(self.config, batch, capacity, weight.dtype, weight.device)

    def forward(
        self,
        ids: torch.Tensor | None,
        prefix: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Next-token logits for ``[prefix | ids]``, continuing after ``cache`` if given.

        Args:
            ids: ``[B, T]`` token ids, or None for a prefix alone.
            prefix: ``[B, P, D]`` conditioning embeddings placed before ``ids``.
            attention_mask: ``[B, P + T]`` True at real positions of *this* call (left padding);
                None = all real. Masks of earlier calls are remembered by ``cache``.
            cache: filled in place; positions continue after ``cache.length``.
            last_only: compute logits for the last position only (generation).
            memory: ``[B, M, D]`` conditioning tokens for cross-attention (needs
                ``config.cross_attention``); with a cache, given once and remembered.
            memory_mask: ``[B, M]`` True at real memory tokens (None = all real); every row
                needs at least one.

        Returns:
            Logits ``[B, P + T, V]`` (``[B, 1, V]`` when ``last_only``) and ``cache``.
        """
        x = self.features(ids, prefix, attention_mask, cache, memory, memory_mask)  # (B, P+T, D)
        if last_only:
            x = x[:, -1:]
        return self._vocabulary_logits(x), cache

    def _vocabulary_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``lm_head(x)`` ``[B, T, V]``, in fp32 even under autocast (a bf16 argmax would turn
        near-ties into the lowest id); a few rows on a CPU go through
        :func:`measured_split_product` (the vocabulary matmul is the step's largest read)."""
        weight = self.lm_head.weight
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(weight.dtype)
            split = measured_split_product(x.reshape(-1, x.shape[-1]), weight, transposed=True)
            if split is None:
                return self.lm_head(x)
            return split.view(*x.shape[:-1], weight.shape[0])

    def features(
        self,
        ids: torch.Tensor | None,
        prefix: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final (normalized) hidden states ``[B, P + T, D]`` that the LM head reads.

        Arguments as for :meth:`forward`. Training reads logits only where a token is predicted
        (``lm_head(features[chosen])``), which skips the vocabulary matmul at prefix and prompt
        positions.
        """
        x = self.embed(ids, prefix)  # (B, T, D), T counts the prefix
        batch, length, _ = x.shape
        past = 0 if cache is None else cache.length
        self._check_room(past + length, cache)
        new_mask = _real_or_none(attention_mask, batch, length)
        key_mask = new_mask if cache is None else cache.record_mask(new_mask, length)  # (B, S)
        positions = position_index(key_mask, past, length)  # slice or (B, T)
        if self.position_embedding is not None:
            x = x + self.position_embedding.weight[positions]  # (T, D) or (B, T, D)
        memory_keys, memory_sdpa_mask = self._memory(memory, memory_mask, batch, cache)
        attend = _Attend(
            rotary=None if self.rotary is None else self.rotary(positions),
            mask=sdpa_mask(key_mask, past, length, x.device),
            is_causal=key_mask is None and past == 0 and length > 1,
            cache=cache,
            memory=memory_keys,
            memory_mask=memory_sdpa_mask,
        )
        x = self.dropout(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, attend, layer)
        if cache is not None:
            cache.length = past + length
        return self.norm(x)

    def _memory(
        self,
        memory: torch.Tensor | None,
        memory_mask: torch.Tensor | None,
        batch: int,
        cache: KVCache | None,
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]] | None, torch.Tensor | None]:
        """Per-layer cross-attention keys/values and SDPA mask ``[B, 1, 1, M]`` for this call.

        From ``memory`` when given (stored in ``cache``), else from the cache, else none.
        """
        if memory is None:
            if memory_mask is not None:
                raise ValueError("memory_mask was given without memory")
            return (None, None) if cache is None else (cache.memory, cache.memory_mask)
        if not self.config.cross_attention:
            raise ValueError(
                "this decoder has no cross-attention (DecoderConfig.cross_attention is False); "
                "pass the conditioning tokens as a prefix instead"
            )
        if memory.dim() != 3 or memory.shape[0] != batch or memory.shape[2] != self.config.dim:
            raise ValueError(
                f"memory must be [B={batch}, M, {self.config.dim}], got {tuple(memory.shape)}"
            )
        mask = _real_or_none(memory_mask, batch, memory.shape[1], "memory_mask [B, M]")
        if mask is not None and not bool(mask.any(1).all()):
            raise ValueError("every row of memory_mask needs at least one real (True) token")
        sdpa = None if mask is None else mask[:, None, None, :]
        keys = [cast(DecoderBlock, block).cross.memory_keys(memory) for block in self.blocks]
        if cache is not None:
            cache.memory, cache.memory_mask = keys, sdpa
        return keys, sdpa

    def embed(self, ids: torch.Tensor | None, prefix: torch.Tensor | None) -> torch.Tensor:
        """``[prefix | token embeddings]``: ``[B, P + T, D]`` (no positions yet)."""
        if prefix is not None and (prefix.dim() != 3 or prefix.shape[-1] != self.config.dim):
            raise ValueError(f"prefix must be [B, P, {self.config.dim}], got {tuple(prefix.shape)}")
        if ids is None:
            if prefix is None:
                raise ValueError("DecoderLM needs ids, a prefix, or both")
            return prefix
        tokens = self.token_embedding(ids)
        if prefix is None:
            return tokens
        if prefix.shape[0] != ids.shape[0]:
            raise ValueError(f"prefix batch {prefix.shape[0]} != ids batch {ids.shape[0]}")
        return torch.cat([prefix.to(tokens.dtype), tokens], dim=1)

    def _check_room(self, total: int, cache: KVCache | None) -> None:
        if total > self.config.max_positions:
            raise ValueError(
                f"{total} positions exceed max_positions={self.config.max_positions}; "
                "shorten the prompt/prefix or generate fewer tokens"
            )
        if cache is not None and total > cache.capacity:
            raise ValueError(
                f"the KV cache holds {cache.capacity} positions but this call needs {total}; "
                "allocate it with a larger capacity"
            )


def _real_or_none(
    mask: torch.Tensor | None, batch: int, length: int, name: str = "attention_mask [B, P + T]"
) -> torch.Tensor | None:
    """Check ``mask [B, T]``; None when absent or all real (so attention can skip it)."""
    if mask is None:
        return None
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"{name} must be {[batch, length]}, got {list(mask.shape)}")
    mask = mask.to(torch.bool)
    return None if bool(mask.all()) else mask


def position_index(key_mask: torch.Tensor | None, past: int, length: int) -> slice | torch.Tensor:
    """Positions of the new ``length`` tokens, counting real tokens only.

    A slice ``past:past + length`` when nothing is padded (no per-step allocation while
    decoding), else per-row positions ``[B, T]`` (padding gets 0; its output is unused).
    """
    if key_mask is None:
        return slice(past, past + length)
    return (key_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]


def sdpa_mask(
    key_mask: torch.Tensor | None, past: int, length: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean SDPA mask ``[B|1, 1, T, past + T]`` (True = may attend).

    None when no explicit mask is needed: a plain prefill (``is_causal``) or one new token
    over an all-real cache (it may see every key).
    """
    if key_mask is None and (past == 0 or length == 1):
        return None
    query = torch.arange(past, past + length, device=device)[:, None]
    key = torch.arange(past + length, device=device)[None, :]
    allowed = key <= query  # (T, S)
    if key_mask is None:
        return allowed[None, None]
    # A padding query would otherwise see no key at all (NaN); its output is never used.
    return ((allowed & key_mask[:, None, :]) | (key == query))[:, None]
