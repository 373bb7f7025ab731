"""Images from words: our decoder predicts an image's 64 tokenizer ids from its caption.

The caption is read by the trained checkpoint's text encoder (frozen); its token states,
projected to the decoder's width, are the decoder's prefix (left-padded, as the decoder's
attention mask expects), then ``<start>`` and the image's ids in raster order follow. Sampling
draws the 64 ids one by one with the KV cache (temperature and top-k, seeded) and the
tokenizer's decoder paints them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.modules.decoder import DecoderConfig, DecoderLM

IMAGE_TOKENS = 64


def left_padded(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens to the right end: ``[B, L, D]`` and ``[B, L]`` (True = real)
    with right padding -> the same with left padding."""
    lengths = mask.sum(1)
    length = states.shape[1]
    positions = torch.arange(length, device=states.device)
    # Row b's source position for output position p is p - (L - len_b), valid when >= 0.
    source = positions[None, :] - (length - lengths)[:, None]
    valid = source >= 0
    gathered = states.gather(1, source.clamp_min(0)[..., None].expand(-1, -1, states.shape[2]))
    return gathered * valid[..., None], valid


class CaptionToImage(nn.Module):
    """Caption token states ``[B, L, text_dim]`` (+ mask) -> logits over image ids."""

    def __init__(self, text_dim: int, codes: int, config: DecoderConfig):
        super().__init__()
        self.codes = codes
        self.start = codes  # the <start> id follows the image ids
        self.project = nn.Linear(text_dim, config.dim)
        self.null = nn.Parameter(torch.zeros(1, 1, config.dim))
        """The prefix of "no caption" (classifier-free guidance)."""
        self.decoder = DecoderLM(config)

    def prefix(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder prefix ``[B, L, D]`` and its left-padded mask ``[B, L]``."""
        padded, valid = left_padded(states, mask)
        return self.project(padded), valid

    def unconditional(
        self, prefix: torch.Tensor, valid: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefix with ``rows`` (bool ``[B]``) turned into "no caption": only the last
        position is real and holds the learned null vector."""
        null_prefix = torch.zeros_like(prefix)
        null_prefix[:, -1] = self.null[0, 0]
        null_valid = torch.zeros_like(valid)
        null_valid[:, -1] = True
        pick = rows.view(-1, 1)
        return (
            torch.where(pick.unsqueeze(-1), null_prefix, prefix),
            torch.where(pick, null_valid, valid),
        )

    def loss(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        ids: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-id cross-entropy over the 64 ids ``[B, 64]`` of each image; rows where ``drop``
        (bool ``[B]``) is True learn without their caption (for guidance)."""
        prefix, valid = self.prefix(states, mask)
        if drop is not None:
            prefix, valid = self.unconditional(prefix, valid, drop)
        start = torch.full((ids.shape[0], 1), self.start, dtype=torch.long, device=ids.device)
        inputs = torch.cat([start, ids[:, :-1]], dim=1)  # (B, 64)
        attention = torch.cat([valid, torch.ones_like(inputs, dtype=torch.bool)], dim=1)
        logits, _ = self.decoder(inputs, prefix, attention)
        image_logits = logits[:, prefix.shape[1] :, : self.codes]  # (B, 64, K)
        return F.cross_entropy(image_logits.reshape(-1, self.codes), ids.reshape(-1))

    @torch.no_grad()
    def sample(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator,
        temperature: float = 1.0,
        top_k: int = 0,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """Image ids ``[B, 64]``; draws on the host with ``generator`` (the same ids on every
        device); temperature 0 is greedy. ``guidance`` above 1 is classifier-free guidance:
        the logits are ``u + guidance * (c - u)`` of the captioned (c) and caption-less (u)
        passes, run as one batch of ``2B`` rows."""
        prefix, valid = self.prefix(states, mask)
        batch = states.shape[0]
        guided = guidance != 1.0
        if guided:
            everyone = torch.ones(batch, dtype=torch.bool, device=states.device)
            null_prefix, null_valid = self.unconditional(prefix, valid, everyone)
            prefix, valid = torch.cat([prefix, null_prefix]), torch.cat([valid, null_valid])
        rows = prefix.shape[0]
        cache = self.decoder.new_cache(rows, prefix.shape[1] + IMAGE_TOKENS + 1)
        token = torch.full((rows, 1), self.start, dtype=torch.long, device=states.device)
        attention = torch.cat([valid, torch.ones_like(token, dtype=torch.bool)], dim=1)
        logits, _ = self.decoder(token, prefix, attention, cache=cache, last_only=True)
        chosen = []
        for step in range(IMAGE_TOKENS):
            scores = logits[:, -1, : self.codes]
            if guided:
                conditional, unconditional = scores[:batch], scores[batch:]
                scores = unconditional + guidance * (conditional - unconditional)
            drawn = self._draw(scores, generator, temperature, top_k)
            chosen.append(drawn)
            if step + 1 < IMAGE_TOKENS:
                token = torch.cat([drawn, drawn]) if guided else drawn
                ones = torch.ones_like(token, dtype=torch.bool)
                logits, _ = self.decoder(token, None, ones, cache=cache, last_only=True)
        return torch.cat(chosen, dim=1)

    @staticmethod
    def _draw(
        logits: torch.Tensor, generator: torch.Generator, temperature: float, top_k: int
    ) -> torch.Tensor:
        """One id per row ``[B, 1]`` from logits ``[B, K]``."""
        if temperature <= 0:
            return logits.argmax(-1, keepdim=True)
        scaled = logits.float().cpu() / temperature
        if top_k > 0:
            threshold = scaled.topk(min(top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
            scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
        drawn = torch.multinomial(scaled.softmax(-1), 1, generator=generator)
        return drawn.to(logits.device)
