"""Datasets over a manifest and a collate function for any subset of modalities.

A sample that lacks a modality simply has no key for it. The collated batch keeps that
honesty: each modality is a :class:`ModalityBatch` holding only the rows that carry it, with
``rows`` saying which batch positions those are. Nothing is zero-filled to pretend to be data.

Item keys (all optional except ``id``):

- ``image`` ``[3, H, W]`` float; ``audio`` ``[n_mels, frames]`` log-mel of the sample's audio;
- ``text`` ``[L]`` token ids of the caption;
- ``question`` ``[L]`` token ids; ``spoken_question`` ``[n_mels, frames]``; ``answer``,
  ``family`` strings (question view only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from trimodal.data.manifest import Sample
from trimodal.data.tokenizer import TextTokenizer
from trimodal.data.transforms import ImageTransform, LogMel, load_audio

SEQUENCE_KEYS = ("text", "question")
SPECTROGRAM_KEYS = ("audio", "spoken_question")
IMAGE_KEYS = ("image",)
STRING_KEYS = ("answer", "family")
MODALITIES = ("image", "audio", "text")
View = Literal["sample", "question"]


@dataclass(frozen=True)
class ModalityBatch:
    """One modality of a batch, for the rows that have it.

    Attributes:
        values: ``[B_m, ...]`` stacked or padded values.
        mask: ``[B_m, T]`` True at real (non-padding) positions; None for images.
        rows: ``[B_m]`` int64 positions of these rows in the full batch.
    """

    values: torch.Tensor
    mask: torch.Tensor | None
    rows: torch.Tensor

    def to(self, device: torch.device | str) -> ModalityBatch:
        """Move every tensor to ``device``."""
        mask = self.mask.to(device) if self.mask is not None else None
        return ModalityBatch(self.values.to(device), mask, self.rows.to(device))


@dataclass
class Batch:
    """A collated batch: per-modality :class:`ModalityBatch` plus per-row strings."""

    ids: list[str]
    modalities: dict[str, ModalityBatch] = field(default_factory=dict)
    strings: dict[str, list[str | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: str) -> bool:
        return key in self.modalities

    def __getitem__(self, key: str) -> ModalityBatch:
        return self.modalities[key]


class ManifestDataset(Dataset[dict[str, Any]]):
    """Decodes manifest samples into tensors.

    Args:
        samples: validated samples (e.g. ``manifest.split("train")``).
        tokenizer: encodes ``text`` and ``question``.
        modalities: which of image/audio/text to load (others are left out even if present).
        view: ``"sample"`` gives one item per sample; ``"question"`` one item per question.
        image_transform: image decoding/augmentation.
        log_mel: audio feature extractor (16 kHz input).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        tokenizer: TextTokenizer,
        modalities: Sequence[str] = MODALITIES,
        view: View = "sample",
        image_transform: ImageTransform | None = None,
        log_mel: LogMel | None = None,
    ):
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
        self.samples = list(samples)
        self.tokenizer = tokenizer
        self.modalities = tuple(modalities)
        self.view = view
        self.image_transform = image_transform or ImageTransform()
        self.log_mel = log_mel or LogMel()
        if view == "question":
            self.index = [
                (s, q)
                for s, sample in enumerate(self.samples)
                for q in range(len(sample.questions))
            ]
        elif view == "sample":
            self.index = [(s, -1) for s in range(len(self.samples))]
        else:
            raise ValueError(f"view must be 'sample' or 'question', got {view!r}")

    def __len__(self) -> int:
        return len(self.index)

    def _spectrogram(self, path: Any) -> torch.Tensor:
        with torch.no_grad():
            return self.log_mel(load_audio(path, self.log_mel.sample_rate))

    def __getitem__(self, position: int) -> dict[str, Any]:
        sample_index, question_index = self.index[position]
        sample = self.samples[sample_index]
        item: dict[str, Any] = {"id": sample.id}
        if "image" in self.modalities and sample.image is not None:
            item["image"] = self.image_transform(sample.image)
        if question_index >= 0:
            question = sample.questions[question_index]
            item["id"] = f"{sample.id}#q{question_index}"
            item["question"] = torch.tensor(
                self.tokenizer.encode(question.question), dtype=torch.long
            )
            item["answer"] = question.answer
            if question.family is not None:
                item["family"] = question.family
            if "audio" in self.modalities and question.spoken_question is not None:
                item["spoken_question"] = self._spectrogram(question.spoken_question)
            return item
        if "audio" in self.modalities and sample.audio is not None:
            item["audio"] = self._spectrogram(sample.audio)
        if "text" in self.modalities and sample.text is not None:
            item["text"] = torch.tensor(self.tokenizer.encode(sample.text), dtype=torch.long)
        return item


def pad_sequences(values: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[L_i]`` ids -> ``([B, L_max], mask [B, L_max])``, on the values' device."""
    length = max(v.shape[0] for v in values)
    device = values[0].device
    padded = torch.full((len(values), length), pad_id, dtype=values[0].dtype, device=device)
    mask = torch.zeros(len(values), length, dtype=torch.bool, device=device)
    for row, value in enumerate(values):
        padded[row, : value.shape[0]] = value
        mask[row, : value.shape[0]] = True
    return padded, mask


def pad_spectrograms(values: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n_mels, T_i]`` -> ``([B, n_mels, T_max], mask [B, T_max])``; padding is zeros."""
    frames = max(v.shape[-1] for v in values)
    padded = values[0].new_zeros(len(values), values[0].shape[0], frames)
    mask = torch.zeros(len(values), frames, dtype=torch.bool, device=padded.device)
    for row, value in enumerate(values):
        padded[row, :, : value.shape[-1]] = value
        mask[row, : value.shape[-1]] = True
    return padded, mask


@dataclass(frozen=True)
class Collator:
    """Collates dataset items into a :class:`Batch` (use as a DataLoader's ``collate_fn``)."""

    pad_id: int = 0

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        batch = Batch(ids=[item["id"] for item in items])
        for key in (*IMAGE_KEYS, *SEQUENCE_KEYS, *SPECTROGRAM_KEYS):
            present = [(row, item[key]) for row, item in enumerate(items) if key in item]
            if not present:
                continue
            rows = torch.tensor([row for row, _ in present], dtype=torch.long)
            values = [value for _, value in present]
            mask: torch.Tensor | None
            if key in SEQUENCE_KEYS:
                stacked, mask = pad_sequences(values, self.pad_id)
            elif key in SPECTROGRAM_KEYS:
                stacked, mask = pad_spectrograms(values)
            else:
                stacked, mask = torch.stack(values), None
            batch.modalities[key] = ModalityBatch(stacked, mask, rows)
        for key in STRING_KEYS:
            if any(key in item for item in items):
                batch.strings[key] = [item.get(key) for item in items]
        return batch
