"""The tri-modal model: three encoders, a fusion module, a transformer backbone and task heads.

::

    image [B,3,S,S] -> ImageEncoder -> tokens + pooled ─┐
    text ids [B,L]  -> TextEncoder  -> tokens + pooled ─┼─> contrastive embeddings (pooled)
    log-mel [B,M,F] -> AudioEncoder -> tokens + pooled ─┘
    {modality: tokens} -> Fusion -> [CLS] + fused tokens -> backbone -> answer head (VQA)
    image tokens -> attribute head (multi-label scene attributes)
    each image token -> object head (colour / shape / size of the object under it, or none)

Checkpoints (a directory of config, weights, tokenizer, vocabulary and metrics, written
atomically) are :mod:`trimodal.models.checkpoint`'s; ``save_pretrained`` / ``from_pretrained``
reach them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.config import Config
from trimodal.data.tensors import OBJECT_GROUPS, attribute_groups
from trimodal.data.tokenizer import TextTokenizer
from trimodal.generation.conditioning import (
    MODALITY_PARTS,
    PrefixProjector,
    build_decoder,
    join_prefixes,
)
from trimodal.modalities import enabled_modalities, get_modality, registered_modalities
from trimodal.models.checkpoint import (
    Vocabulary,
    load_weights,
    read_checkpoint,
    write_directory_atomically,
    write_model_files,
)
from trimodal.modules.decoder import DecoderLM
from trimodal.modules.encoders.base import EncoderOutput, encode_in_length_groups
from trimodal.modules.encoders.tower_text import TowerTextEncoder
from trimodal.modules.fusion import build_fusion
from trimodal.modules.layers import TokenSequence, TransformerStack, initial_grid_positions
from trimodal.modules.temperature import LearnableTemperature
from trimodal.world.question_pool import GROUNDED_OBJECTS


class CTCTranscriber(nn.Module):
    """Audio tokens ``[B, T, D]`` (+ mask) -> CTC scores ``[B, T, vocab + 1]``; the last class
    is the blank."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float, vocab_size: int):
        super().__init__()
        self.blocks = TransformerStack(dim, depth, heads, mlp_ratio)
        self.out = nn.Linear(dim, vocab_size + 1)

    @property
    def blank(self) -> int:
        """Index of the blank class."""
        return self.out.out_features - 1

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(tokens, mask))


def greedy_ctc(scores: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best path of CTC ``scores [B, T, V + 1]`` (blank last) over the real steps of ``mask
    [B, T]``: repeats merged, blanks dropped, left-aligned -> ``ids [B, L]``, ``mask [B, L]``.
    A row with nothing left keeps one padding token (id 0), so every row can be encoded."""
    blank = scores.shape[-1] - 1
    best = scores.argmax(-1).masked_fill(~mask, blank)  # (B, T)
    previous = F.pad(best, (1, 0), value=blank)[:, :-1]
    keep = (best != blank) & (best != previous)
    lengths = keep.sum(1)
    width = max(1, int(lengths.max()) if len(lengths) else 1)
    ids = torch.zeros(len(best), width, dtype=torch.long, device=best.device)
    slot = keep.cumsum(1) - 1  # (B, T): where a kept step lands
    rows = torch.arange(len(best), device=best.device)[:, None].expand_as(best)
    ids[rows[keep], slot[keep]] = best[keep]
    out_mask = torch.arange(width, device=best.device)[None, :] < lengths[:, None]
    out_mask[:, 0] = True
    return ids, out_mask


class TriModalModel(nn.Module):
    """Encoders + fusion + backbone + heads, built from a :class:`Config`.

    Args:
        config: the resolved recipe.
        vocab_size: tokenizer vocabulary size.
        vocabulary: answer and attribute label spaces.
    """

    def __init__(self, config: Config, vocab_size: int, vocabulary: Vocabulary):
        super().__init__()
        self.config, self.vocabulary = config, vocabulary
        m = config.model
        self.encoders = nn.ModuleDict(
            {mod.name: mod.build_encoder(config, vocab_size) for mod in enabled_modalities(config)}
        )
        self.register_load_state_dict_pre_hook(_legacy_encoder_names)
        self.temperature = LearnableTemperature()
        names = tuple(sorted(self.encoders))  # fusion takes modalities in sorted order
        self.fusion = build_fusion(m.fusion.name, m.dim, names, **m.fusion.options)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, m.dim))
        self.backbone = TransformerStack(
            m.dim, m.backbone_depth, m.backbone_heads, m.mlp_ratio, m.dropout
        )
        self.answer_head = nn.Sequential(
            nn.Linear(m.dim, m.dim), nn.GELU(), nn.Linear(m.dim, len(vocabulary.answers))
        )
        self.attribute_head = nn.Linear(m.dim, max(1, len(vocabulary.attributes)))
        groups = attribute_groups(vocabulary.attributes)
        self._object_classes = [len(groups[group]) + 1 for group in OBJECT_GROUPS]
        self.object_head = nn.Linear(m.dim, sum(self._object_classes))
        self.grounding_head = (
            nn.Linear(m.dim, 2 * GROUNDED_OBJECTS * m.grounding_bins)
            if m.grounding_bins > 0
            else None
        )
        self._tokenizer: TextTokenizer | None = None
        self.projector: PrefixProjector | None = None
        self.decoder: DecoderLM | None = None
        self.caption_grounding: nn.Linear | None = None
        if m.decoder.depth > 0:
            self.projector = PrefixProjector(
                m.dim, m.decoder.dim, m.decoder.memory_positions, m.decoder.memory_grid
            )
            self.decoder = build_decoder(m.decoder, vocab_size)
            if m.decoder.grounding_bins > 0:
                self.caption_grounding = nn.Linear(m.decoder.dim, 2 * m.decoder.grounding_bins)
        if m.vqa_inputs not in ("both", "question", "image"):
            raise ValueError(
                f"model.vqa_inputs must be 'both', 'question' or 'image', got {m.vqa_inputs!r}"
            )
        # Built last, so the other modules' initialization does not depend on it.
        self.transcriber: CTCTranscriber | None = (
            CTCTranscriber(m.dim, m.transcriber_depth, m.backbone_heads, m.mlp_ratio, vocab_size)
            if m.transcriber_depth > 0
            else None
        )

    # -- encoders -------------------------------------------------------------------------
    def encode(self, modality: str, *inputs: Any, **options: Any) -> EncoderOutput:
        """One batch of ``modality``'s inputs -> :class:`EncoderOutput`.

        ``"image"``: normalized images ``[B, 3, S, S]``; ``"text"``: ids ``[B, L]`` and mask
        (``causal=`` overrides ``model.text.causal``); ``"audio"``: log-mel ``[B, n_mels, F]``
        and frame mask ``[B, F]``. What each takes is its :class:`Modality`'s to say. Tensor
        inputs move to the model's device here (a no-op where they already are).
        """
        device = self.device
        moved = [x.to(device, non_blocking=True) if torch.is_tensor(x) else x for x in inputs]
        return get_modality(modality).encode(
            self.encoders[modality], self.config, *moved, **options
        )

    def compile_parts(self) -> list[str]:
        """``torch.compile`` (in place; a part recompiles once with dynamic shapes when its
        input sizes vary) every tensor-heavy part: the encoders,
        fusion, backbone, transcriber, projector and decoder. The Python around them (question
        pools, tokenization, task choice) stays eager; weight names do not change. Returns the
        compiled parts' names."""
        parts: dict[str, nn.Module | None] = {
            **{f"encoders.{name}": encoder for name, encoder in self.encoders.items()},
            "fusion": self.fusion,
            "backbone": self.backbone,
            "transcriber": self.transcriber,
            "projector": self.projector,
            "decoder": self.decoder,
        }
        compiled = []
        for name, part in parts.items():
            if part is not None:
                part.compile()
                compiled.append(name)
        return compiled

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (the temperature is always on the model)."""
        return self.temperature.logit_scale.device

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """The BPE tokenizer of the model's text (set by training and by loading)."""
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: TextTokenizer | None) -> None:
        """Set the tokenizer and hand its decoder to encoders that read text back from ids."""
        self._tokenizer = tokenizer
        for encoder in self.encoders.values():
            if tokenizer is not None and isinstance(encoder, TowerTextEncoder):
                encoder.use_tokenizer(tokenizer.decode_rows)

    @property
    def image_grid(self) -> int:
        """Side of the image encoder's token grid (tokens = ``image_grid ** 2``)."""
        return int(getattr(self.encoders["image"], "grid"))  # noqa: B009 (ModuleDict item)

    def encode_padded_text(
        self, ids: torch.Tensor, mask: torch.Tensor, causal: bool | None = None
    ) -> EncoderOutput:
        """``encode("text", ...)`` after dropping columns that are padding in every row.

        Rows gathered from a store padded to the longest text of a whole manifest are mostly
        padding; the masked result is the same, only cheaper.
        """
        keep = mask.any(0)
        return encode_in_length_groups(
            lambda i, m: self.encode("text", i, m, causal=causal),
            ids[:, keep],
            mask[:, keep],
            self.config.model.length_groups,
        )

    def encode_question(self, ids: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        """:meth:`encode_padded_text` for typed questions: causal when ``model.text.causal``
        or ``model.text.causal_questions`` is on."""
        text = self.config.model.text
        return self.encode_padded_text(ids, mask, causal=text.causal or text.causal_questions)

    def image_context(self, image: EncoderOutput) -> TokenSequence:
        """Image tokens as fusion sees them: the grid average-pooled by ``fusion_image_pool``.

        The encoder keeps its full grid (fine detail for the contrastive embedding and the
        attribute head); question-time fusion reads a coarser grid, which cuts the cost of every
        question's keys and values by ``pool ** 2``.
        """
        pool = self.config.model.fusion_image_pool
        if pool <= 1:
            return self._with_positions(image.sequence())
        batch, count, dim = image.tokens.shape
        grid = math.isqrt(count)
        if grid * grid != count or grid % pool:
            raise ValueError(
                f"model.fusion_image_pool={pool} does not divide the {grid}x{grid} image grid"
            )
        tokens = image.tokens.transpose(1, 2).reshape(batch, dim, grid, grid)
        pooled = F.avg_pool2d(tokens, pool).flatten(2).transpose(1, 2)  # (B, (g/p)^2, D)
        mask = torch.ones(pooled.shape[:2], dtype=torch.bool, device=pooled.device)
        return self._with_positions(TokenSequence(pooled, mask))

    def _with_positions(self, image: TokenSequence) -> TokenSequence:
        """Add the fixed 2-D sin/cos grid table when ``model.fusion_positions`` is on."""
        if not self.config.model.fusion_positions:
            return image
        count, dim = image.tokens.shape[1:]
        grid = math.isqrt(count)
        if grid * grid != count or dim % 4:
            raise ValueError(
                f"model.fusion_positions needs a square grid and a width divisible by 4, "
                f"got {count} tokens of width {dim}"
            )
        table = initial_grid_positions("sincos", grid, dim).to(image.tokens)  # (g*g, D)
        return TokenSequence(image.tokens + table, image.mask)

    # -- heads ----------------------------------------------------------------------------
    def fuse(self, inputs: dict[str, TokenSequence]) -> torch.Tensor:
        """Fusion then backbone; returns the ``[CLS]`` state ``[B, D]``."""
        fused = self.fusion(inputs)
        batch = fused.tokens.shape[0]
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), fused.tokens], dim=1)
        mask = torch.cat(
            [torch.ones(batch, 1, dtype=torch.bool, device=tokens.device), fused.mask], dim=1
        )
        return self.backbone(tokens, mask)[:, 0]

    def grounding_logits(self, state: torch.Tensor) -> torch.Tensor:
        """Fused state ``[B, D]`` -> ``[B, 2 * GROUNDED_OBJECTS, bins]`` cell scores: the
        column bin then the row bin of each of the first two objects a question names."""
        if self.grounding_head is None:
            raise ValueError("this model has no grounding head (model.grounding_bins is 0)")
        return self.grounding_head(state).view(
            state.shape[0], 2 * GROUNDED_OBJECTS, self.config.model.grounding_bins
        )

    def answer_logits(
        self, inputs: dict[str, TokenSequence], transcribe: bool = True
    ) -> torch.Tensor:
        """Answer scores ``[B, n_answers]`` for any subset of modalities.

        A blind baseline (``model.vqa_inputs`` = ``question`` or ``image``) drops the other
        inputs here, so the same training and evaluation code serves it. With a transcriber and
        ``transcribe``, a spoken question is read as its transcript (:meth:`transcribed`);
        training the spoken path itself passes ``transcribe=False``.
        """
        if transcribe:
            inputs = self.transcribed(inputs)
        return self.answer_head(self.fuse(self.visible_inputs(inputs)))

    def transcribed(self, inputs: dict[str, TokenSequence]) -> dict[str, TokenSequence]:
        """With a transcriber, a spoken question (``audio`` without ``text``) becomes the typed
        question of its greedy transcript; otherwise ``inputs`` unchanged."""
        if self.transcriber is None or "audio" not in inputs or "text" in inputs:
            return inputs
        ids, mask = self.transcript_ids(inputs["audio"])
        rest = {name: seq for name, seq in inputs.items() if name != "audio"}
        return rest | {"text": self.encode_question(ids, mask).sequence()}

    def transcript_ids(self, audio: TokenSequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy CTC transcript of audio tokens ``[B, T, D]``: ``ids [B, L]``, ``mask [B, L]``
        (:func:`greedy_ctc`). Needs a transcriber."""
        if self.transcriber is None:
            raise ValueError("this model has no transcriber (model.transcriber_depth is 0)")
        return greedy_ctc(self.transcriber(audio.tokens, audio.mask), audio.mask)

    def visible_inputs(self, inputs: dict[str, TokenSequence]) -> dict[str, TokenSequence]:
        """The subset of ``inputs`` the answer head may use under ``model.vqa_inputs``."""
        mode = self.config.model.vqa_inputs
        if mode == "both":
            return inputs
        question = ("text", "audio")  # what a typed or spoken question arrives as
        if mode == "question":
            kept = {name: seq for name, seq in inputs.items() if name in question}
        elif mode == "image":  # what the question is about: the image (or a video)
            kept = {name: seq for name, seq in inputs.items() if name not in question}
        else:
            raise ValueError(
                f"model.vqa_inputs must be 'both', 'question' or 'image', got {mode!r}"
            )
        if not kept:
            raise ValueError(f"a {mode}-only model was given no {mode} input")
        return kept

    def attribute_logits(self, image: EncoderOutput) -> torch.Tensor:
        """Multi-label attribute scores ``[B, n_attributes]`` from image tokens.

        Max-pooled over tokens: "is there a star anywhere" is a presence question, and a mean
        over 64 tokens dilutes a small object's evidence (with a mean, shape presence stayed at
        the base rate for the first few hundred steps on the default world; with a max it is
        learned within them).
        """
        masked = image.tokens.masked_fill(~image.mask.unsqueeze(-1), float("-inf"))
        return self.attribute_head(masked.amax(dim=1))

    def object_classes(self) -> list[int]:
        """Classes per object group (colour, shape, size): the values plus "no object" (last)."""
        return list(self._object_classes)

    def object_logits(self, image: EncoderOutput) -> list[torch.Tensor]:
        """Per-token object scores: one ``[B, T, classes]`` tensor per group of
        :meth:`object_classes` (colour, shape, size of the object covering each token's cell)."""
        return list(self.object_head(image.tokens).split(self._object_classes, dim=-1))

    def decoder_prefix(self, *parts: tuple[str, TokenSequence]) -> TokenSequence:
        """Project each ``(modality, encoder tokens)`` part for the decoder (modality ``image``
        or ``audio``), then concatenate them in order."""
        if self.projector is None:
            raise ValueError(
                "this checkpoint has no decoder (model.decoder.depth is 0); train a recipe with "
                "a decoder and a generate stage"
            )
        projector = self.projector
        for modality, _ in parts:
            if modality not in MODALITY_PARTS:
                raise ValueError(f"decoder parts are {MODALITY_PARTS}, got {modality!r}")
        return join_prefixes(
            [TokenSequence(projector(part.tokens, modality), part.mask) for modality, part in parts]
        )

    # -- checkpoints (files and atomic writes: trimodal.models.checkpoint) ---------------
    def write_files(
        self, directory: Path, tokenizer: TextTokenizer, metrics: dict[str, Any] | None = None
    ) -> None:
        """Write config, weights, tokenizer, vocabulary and metrics into an existing folder."""
        write_model_files(
            directory, self.config, self.vocabulary, self.state_dict(), tokenizer, metrics
        )

    def save_pretrained(
        self,
        directory: str | os.PathLike[str],
        tokenizer: TextTokenizer,
        metrics: dict[str, Any] | None = None,
    ) -> Path:
        """Write the checkpoint directory atomically (temp dir + rename)."""
        return write_directory_atomically(
            Path(directory), lambda staging: self.write_files(staging, tokenizer, metrics)
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], device: str | torch.device = "cpu"
    ) -> TriModalModel:
        """Load a checkpoint written by :meth:`save_pretrained`, or a training run folder's
        latest checkpoint (``model.tokenizer`` is set), onto ``device``."""
        files = read_checkpoint(directory, "cpu")
        model = cls(files.config, files.tokenizer.vocab_size, files.vocabulary)
        load_weights(model, files)
        model.tokenizer = files.tokenizer
        return model.to(device).eval()


def _legacy_encoder_names(
    module: nn.Module, state: dict[str, torch.Tensor], prefix: str, *_: object
) -> None:
    """Load hook: checkpoints written before the modality registry kept each encoder under its
    own attribute (``image_encoder.``); their weights load under ``encoders.<name>.``."""
    for modality in registered_modalities():
        if not modality.legacy_prefix:
            continue  # registered after the registry existed: no old name
        old, new = prefix + modality.legacy_prefix, f"{prefix}encoders.{modality.name}."
        for key in [k for k in state if k.startswith(old)]:
            state[new + key[len(old) :]] = state.pop(key)
