"""The chat template and the prompts of trimodal's generative tasks.

A conversation is a list of turns with roles ``user`` and ``assistant``; a user turn may carry an
image and/or audio. The text side is the concatenation of separately tokenized pieces::

    <bos> [user:] [what is left of the star?] [assistant:] [a small red circle] <eos>
          [user:] [and its size?] [assistant:] [small] <eos>

and the media of every turn, in order, become the decoder's prefix (their projected encoder
tokens, LLaVA style). Training computes the loss on assistant tokens (and their ``<eos>``) only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from trimodal.data.tokenizer import TextTokenizer

CAPTION_PROMPT = "describe the image."
TRANSCRIBE_PROMPT = "transcribe the audio."
SPOKEN_PROMPT = "answer the spoken question."

PathLike = str | os.PathLike[str]
ImageSource = PathLike | Image.Image | torch.Tensor
"""An image file, an image already decoded (what a server received), or one already through
the model's image transform (``[3, S, S]``, normalized)."""
AudioSource = PathLike | torch.Tensor
"""An audio file, or a mono waveform ``[N]`` at the model's sample rate."""


@dataclass
class Turn:
    """One message. ``image`` / ``audio`` are file paths, or a decoded image and a waveform at
    the model's sample rate (user turns only)."""

    role: str
    text: str = ""
    image: ImageSource | None = None
    audio: AudioSource | None = None

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise ValueError(f"a turn's role must be 'user' or 'assistant', got {self.role!r}")
        if self.role == "assistant" and (self.image is not None or self.audio is not None):
            raise ValueError("only user turns may carry an image or audio")


def render_ids(
    tokenizer: TextTokenizer, turns: Sequence[tuple[str, str | list[int]]], open_reply: bool
) -> tuple[list[int], list[bool]]:
    """Token ids of a conversation and a per-id flag marking assistant reply tokens.

    Each text is tokenized on its own (``user:``, the message, ``assistant:``, the reply), so a
    message given as ids (a question already tokenized) renders exactly as its string would.

    Args:
        turns: ``(role, text or token ids)`` pairs in order.
        open_reply: end with ``assistant:`` and no reply, ready for generation.

    Returns:
        ``ids`` starting with ``<bos>``, and ``targets`` (True where a reply token or its
        ``<eos>`` is, i.e. what training predicts).
    """
    if open_reply and (not turns or turns[-1][0] != "user"):
        raise ValueError("a conversation to continue must end with a user turn")
    if not open_reply and (not turns or turns[-1][0] != "assistant"):
        raise ValueError("a training conversation must end with an assistant turn")
    user, assistant = tokenizer.encode("user:"), tokenizer.encode("assistant:")
    ids, targets = [tokenizer.bos_id], [False]
    for role, message in turns:
        tokens = tokenizer.encode(message) if isinstance(message, str) else list(message)
        if role == "user":
            piece = [*user, *tokens, *assistant]
            ids += piece
            targets += [False] * len(piece)
        else:
            ids += [*tokens, tokenizer.eos_id]
            targets += [True] * (len(tokens) + 1)
    return ids, targets


def text_turns(turns: Sequence[Turn]) -> list[tuple[str, str]]:
    """``(role, text)`` of each turn; a user turn with media but no text gets the task prompt.

    Audio alone asks for a transcript unless an image is in the conversation, in which case the
    audio is a spoken question about it; an image alone asks for a caption.
    """
    out, seen_image = [], False
    for turn in turns:
        seen_image = seen_image or turn.image is not None
        text = turn.text
        if turn.role == "user" and not text:
            if turn.audio is not None:
                text = SPOKEN_PROMPT if seen_image else TRANSCRIBE_PROMPT
            elif turn.image is not None:
                text = CAPTION_PROMPT
            else:
                raise ValueError("a user turn needs text, an image or audio")
        out.append((turn.role, text))
    return out
