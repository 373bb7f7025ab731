"""Text through a frozen pretrained tower: MiniLM's token states, then trainable layers.

The encoder takes the same inputs as :class:`~trimodal.modules.encoders.text.TextEncoder` (BPE
ids ``[B, L]`` and their mask), so every caller, the transcriber's greedy transcripts included,
reaches it unchanged. It decodes each row back to its text, lets all-MiniLM-L6-v2 tokenize and
read it (WordPiece, 384-d contextual states of every token), projects the states to the model's
width and runs its own transformer, pooler and projection on them. A text MiniLM never saw in
training ("which form does the star take?") thus arrives as states a pretrained language model
gave it, not as ids a few hundred training words defined.

The tower is frozen: its states for a row depend on that row's text alone, so they are computed
once per distinct text and kept (float16, on the CPU) in a memo; a training run pays the tower
once per distinct caption and question. Its weights come from the installed package, not from
the checkpoint (which records ``model.text.tower``).

``model.text.tower_tune: K`` fine-tunes the tower's last ``K`` transformer layers: they start
from MiniLM's weights, train at ``tower_tune_lr`` times the stage's rate (the optimizer reads
the module's ``lr_scale``) and are saved in the checkpoint. The memo then keeps the states
before them, so a tuned run still reads each distinct text through the frozen layers once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from trimodal.config import TextEncoderConfig
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.encoders.text import TextLayers
from trimodal.towers.minilm import MiniLMTower

TOWERS: tuple[str, ...] = ("none", "minilm")
TOWER_LAYERS = 6
"""Transformer layers in all-MiniLM-L6-v2 (the most ``model.text.tower_tune`` can tune)."""
MEMO_LIMIT = 200_000
"""Distinct texts kept; past this the memo starts afresh (a typo curve makes a new text of
almost every question)."""

Decoder = Callable[[list[list[int]]], list[str]]


class TowerTextEncoder(TextLayers):
    """BPE ids ``[B, L]`` (+ mask) -> :class:`EncoderOutput` over the tower's tokens (``T`` =
    the longest row's WordPiece count, ``[CLS]`` and ``[SEP]`` included, cut to
    ``max_length``).

    :meth:`use_tokenizer` must be called first (the model does it when its tokenizer is set):
    it is how ids become text again.
    """

    def __init__(
        self,
        config: TextEncoderConfig,
        dim: int,
        embed_dim: int,
        mlp_ratio: float = 4.0,
        pool: str = "mean",
        position_init: str = "normal",
        tower_dim: int = 384,
    ):
        super().__init__()
        if config.tower != "minilm":
            raise ValueError(f"model.text.tower must be one of {TOWERS}, got {config.tower!r}")
        if not 0 <= config.tower_tune <= TOWER_LAYERS:
            raise ValueError(
                f"model.text.tower_tune must be between 0 and {TOWER_LAYERS} (MiniLM's "
                f"transformer layers), got {config.tower_tune}"
            )
        if config.tower_tune_lr <= 0:
            raise ValueError(f"model.text.tower_tune_lr must be > 0, got {config.tower_tune_lr}")
        self.input_projection = nn.Linear(tower_dim, dim)
        self.build_layers(config, dim, embed_dim, mlp_ratio, pool, position_init)
        self.tower: MiniLMTower | None = None  # loaded on first use; not part of state_dict
        self.frozen_layers = TOWER_LAYERS - config.tower_tune
        self.tuned = nn.ModuleList()
        if config.tower_tune:
            self.tower = MiniLMTower.load()
            layers = self.tower.model.encoder.layer[self.frozen_layers :]
            self.tuned = nn.ModuleList(copy.deepcopy(layer) for layer in layers)
            self.tuned.requires_grad_(True)
            setattr(self.tuned, "lr_scale", config.tower_tune_lr)  # noqa: B010 (nn.Module types attributes)
        self.decode: Decoder | None = None
        self.memo: dict[tuple[int, ...], torch.Tensor] = {}

    def use_tokenizer(self, decode: Decoder) -> None:
        """Set how rows of BPE ids become texts (``decode(rows) -> texts``)."""
        self.decode = decode

    def tower_states(self, rows: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
        """The frozen layers' token states ``[T_i, 384]`` (float16) of each row of ids (the
        tower's last hidden states when nothing is tuned), from the memo or computed now for
        the rows it lacks."""
        missing = list(dict.fromkeys(row for row in rows if row not in self.memo))
        if missing:
            if self.decode is None:
                raise RuntimeError(
                    "TowerTextEncoder has no tokenizer: call use_tokenizer() (the model does "
                    "when its tokenizer is set) before encoding text"
                )
            if self.tower is None:
                self.tower = MiniLMTower.load()
            if len(self.memo) + len(missing) > MEMO_LIMIT:
                self.memo.clear()
            texts = self.decode([list(row) for row in missing])
            computed = self.tower.token_states(texts, layers=self.frozen_layers)
            for row, states in zip(missing, computed, strict=True):
                self.memo[row] = states[: self.max_length].to(torch.float16)
        return [self.memo[row] for row in rows]

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, causal: bool | None = None
    ) -> EncoderOutput:
        """Encode ``ids [B, L]`` with ``mask [B, L]`` (True at real ids; the row's text is
        its real ids). ``causal`` overrides ``model.text.causal`` for this call."""
        lengths = mask.sum(1).tolist()
        rows = [tuple(row[:n]) for row, n in zip(ids.tolist(), lengths, strict=True)]
        states = self.tower_states(rows)
        tokens_in = pad_sequence(states, batch_first=True).to(ids.device, torch.float32)
        counts = torch.tensor([len(s) for s in states], device=ids.device)
        token_mask = torch.arange(tokens_in.shape[1], device=ids.device) < counts[:, None]
        if len(self.tuned):
            tokens_in = self.run_tuned(tokens_in, token_mask)
        return self.encode_vectors(self.input_projection(tokens_in), token_mask, causal)

    def run_tuned(self, hidden: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """The tuned MiniLM layers over the frozen layers' states ``hidden [B, T, 384]`` with
        real tokens ``token_mask [B, T]`` -> ``[B, T, 384]``."""
        assert self.tower is not None  # loaded in __init__ whenever layers are tuned
        attention = self.tower.attention_mask(hidden, token_mask)
        for layer in self.tuned:
            hidden = layer(hidden, attention)
        return hidden
