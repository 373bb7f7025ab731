"""A modality is one object: its name, the encoder it builds and how that encoder is called.

The model holds one encoder per enabled modality in ``encoders: nn.ModuleDict`` keyed by the
modality's name and reaches it through ``TriModalModel.encode(name, ...)``; nothing else in the
model names a modality's encoder. See :mod:`trimodal.modalities` for the registry.

A :class:`StoredModality` also owns its data path: the manifest field that names its file, the
check of that file, its decoder from file to a stored row (cached with the decoded manifest in
``SceneTensors.media[name]``), the batch of encoder inputs made from stored rows, and its
corruptions for the robustness curves. Manifests, the tensor store, training steps, retrieval,
``ask`` and ``embed`` reach it through the registry, never by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trimodal.config import Config
from trimodal.modules.encoders.base import EncoderOutput


class Modality(ABC):
    """One input modality.

    Attributes:
        name: the key of its encoder in ``TriModalModel.encoders`` and of its inputs in fusion.
        legacy_prefix: where checkpoints written before the registry kept its encoder's weights
            (``"image_encoder."``); they load under ``encoders.<name>.``.
    """

    name: str
    legacy_prefix: str = ""

    def enabled(self, config: Config) -> bool:
        """Whether a model built from ``config`` has this modality's encoder."""
        return True

    @abstractmethod
    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        """The modality's encoder for a recipe (``vocab_size``: the tokenizer's)."""

    def encode(
        self, encoder: nn.Module, config: Config, *inputs: Any, **options: Any
    ) -> EncoderOutput:
        """Run ``encoder`` on one batch of this modality's inputs."""
        output: EncoderOutput = encoder(*inputs, **options)
        return output

    @abstractmethod
    def example_inputs(self, config: Config, batch: int, vocab_size: int) -> tuple[Any, ...]:
        """Random encoder inputs for ``batch`` rows (contract tests and shape checks)."""


class StoredModality(Modality):
    """A modality whose files a manifest names in :attr:`manifest_field` and whose decoded rows
    the tensor store keeps in a store of its own (``SceneTensors.media[name]``).

    Every stored row has one fixed shape (:meth:`decode` resamples to it), so a batch is a
    plain index gather of the store.
    """

    manifest_field: str
    """The manifest's top-level field holding a path to this modality's file."""
    question_role: str = "context"
    """Where the answer head sees it: ``context`` (what a question is about, like an image)."""

    @abstractmethod
    def check_file(self, path: Path) -> str | None:
        """What is wrong with the file at ``path`` (missing, undecodable), or None."""

    @abstractmethod
    def decode(self, path: Path, config: Config) -> torch.Tensor:
        """One file -> its stored row (compact dtype, fixed shape for ``config``)."""

    @abstractmethod
    def inputs(self, stored: torch.Tensor, config: Config) -> tuple[Any, ...]:
        """Stored rows ``[B, ...]`` -> the encoder's inputs for them."""

    def cache_key(self, config: Config) -> str:
        """Every setting :meth:`decode` depends on (part of the tensor cache's key)."""
        return self.name

    def corruptions(self) -> dict[str, Any]:
        """``{kind: fn(stored [B, ...] uint8, level, generator) -> stored}`` for the
        robustness curves; empty when the modality has none."""
        return {}
