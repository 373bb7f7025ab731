"""Batched generation for :class:`~trimodal.modules.decoder.DecoderLM`.

Greedy, temperature, top-k and top-p sampling with stop tokens and a length limit, over the
model's preallocated KV cache (or, for checking it, by re-running the whole sequence each step).
Rows finish independently: a row that emitted a stop token is padded from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from trimodal.modules.decoder import DecoderLM


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set all but the top-k and nucleus (top-p) tokens to ``-inf``: ``[B, V] -> [B, V]``.

    top-k keeps the ``top_k`` largest logits (0 = off; ties with the k-th are kept). top-p keeps
    the most probable tokens until their probability reaches ``top_p``: a token stays when the
    tokens strictly ahead of it in the sorted order hold less than ``top_p`` (1.0 = off); the
    most probable token always stays.
    """
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        ahead = probs.cumsum(dim=-1) - probs  # (B, V) mass of better tokens
        drop_sorted = ahead >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose_tokens(
    logits: torch.Tensor,
    do_sample: bool,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Next token per row from ``logits [B, V]``: argmax, or a filtered sample. ``-> [B]``."""
    if not do_sample:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(dim=-1)
    if generator is not None and generator.device != probs.device:
        # A seed given as a CPU generator draws on the CPU: the same tokens on every device.
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


NextLogits = Callable[[torch.Tensor | None], torch.Tensor]
Memory = tuple[torch.Tensor | None, torch.Tensor | None]  # cross-attention tokens, their mask


def _cached_logits(
    model: DecoderLM,
    ids: torch.Tensor,
    prefix: torch.Tensor | None,
    mask: torch.Tensor | None,
    max_new_tokens: int,
    memory: Memory,
) -> NextLogits:
    """Prefill once, then feed one token per step: token ``[B] | None`` -> logits ``[B, V]``.

    The memory's cross-attention keys are computed at the prefill and kept in the cache.
    """
    prompt = ids.shape[1] + (0 if prefix is None else prefix.shape[1])
    cache = model.new_cache(ids.shape[0], prompt + max_new_tokens)

    def next_logits(token: torch.Tensor | None) -> torch.Tensor:
        if token is None:
            logits, _ = model(
                ids, prefix, mask, cache, last_only=True, memory=memory[0], memory_mask=memory[1]
            )
        else:
            logits, _ = model(token[:, None], cache=cache, last_only=True)
        return logits[:, -1]

    return next_logits


def _uncached_logits(
    model: DecoderLM,
    ids: torch.Tensor,
    prefix: torch.Tensor | None,
    mask: torch.Tensor | None,
    memory: Memory,
) -> NextLogits:
    """Recompute the whole sequence every step (reference for the cached path)."""

    def next_logits(token: torch.Tensor | None) -> torch.Tensor:
        nonlocal ids, mask
        if token is not None:
            ids = torch.cat([ids, token[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        logits, _ = model(
            ids, prefix, mask, last_only=True, memory=memory[0], memory_mask=memory[1]
        )
        return logits[:, -1]

    return next_logits


def _check_generate_options(
    max_new_tokens: int, temperature: float, top_k: int, top_p: float, do_sample: bool
) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if do_sample and temperature <= 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature}")
    if top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"need top_k >= 0 and 0 < top_p <= 1, got {top_k} and {top_p}")


def generate(
    model: DecoderLM,
    ids: torch.Tensor | None,
    prefix: torch.Tensor | None = None,
    *,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    do_sample: bool = False,
    stop_tokens: Sequence[int] = (),
    pad_id: int = 0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    memory: torch.Tensor | None = None,
    memory_mask: torch.Tensor | None = None,
    on_token: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Continue a batch of left-padded prompts; the model runs in eval mode meanwhile.

    Args:
        ids: ``[B, T]`` prompt ids (left-padded), or None to start from the prefix alone.
        prefix: ``[B, P, D]`` conditioning embeddings before the prompt.
        attention_mask: ``[B, P + T]`` True at real positions; None = all real.
        temperature, top_k, top_p: sampling controls (see :func:`filter_logits`); unused when
            ``do_sample`` is False (greedy).
        stop_tokens: a row stops after emitting one of these (it is kept) and gets ``pad_id``
            afterwards; generation ends early once every row has stopped.
        generator: random source for sampling.
        use_cache: prefill once and decode one token per step (False recomputes everything).
        memory: ``[B, M, D]`` conditioning tokens for a cross-attention decoder.
        memory_mask: ``[B, M]`` True at real memory tokens; None = all real.
        on_token: called after every step with that step's tokens ``[B]`` (``pad_id`` in rows
            that had stopped), for streaming; an exception it raises ends generation.

    Returns:
        New tokens ``[B, N]``, ``N <= max_new_tokens``.
    """
    _check_generate_options(max_new_tokens, temperature, top_k, top_p, do_sample)
    if ids is None:
        if prefix is None:
            raise ValueError("generate needs ids, a prefix, or both")
        ids = torch.zeros(prefix.shape[0], 0, dtype=torch.long, device=prefix.device)
    cross: Memory = (memory, memory_mask)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            next_logits = (
                _cached_logits(model, ids, prefix, attention_mask, max_new_tokens, cross)
                if use_cache
                else _uncached_logits(model, ids, prefix, attention_mask, cross)
            )
            choose = partial(
                choose_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
            )
            return _decode_loop(
                next_logits, choose, ids, max_new_tokens, stop_tokens, pad_id, on_token
            )
    finally:
        model.train(was_training)


def _decode_loop(
    next_logits: NextLogits,
    choose: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    max_new_tokens: int,
    stop_tokens: Sequence[int],
    pad_id: int,
    on_token: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Pick ``max_new_tokens`` tokens per row, padding rows that stopped: ``-> [B, N]``."""
    batch, device = ids.shape[0], ids.device
    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    stops = torch.tensor(list(stop_tokens), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    token: torch.Tensor | None = None
    for step in range(max_new_tokens):
        token = choose(next_logits(token))  # (B,); fed back as is, so pad_id need not be a token
        out[:, step] = token.masked_fill(finished, pad_id)
        if on_token is not None:
            on_token(out[:, step])
        if not len(stop_tokens):
            continue
        finished |= torch.isin(token, stops)
        if bool(finished.all()):
            return out[:, : step + 1]
    return out
