"""The loss of one training step as a module, so DistributedDataParallel can wrap it.

:class:`TrainStep` holds what every stage's loss reads (the model, the multi-task weighting,
the question and caption pools, fixed encoder outputs, the contrastive pairs) and asks the
running :class:`~trimodal.train.stages.base.Stage` for the step's loss: it knows no stage or
task by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from trimodal.config import AlignConfig, Config
from trimodal.data.image_effects import PixelAugment
from trimodal.data.mel_effects import audio_augment
from trimodal.data.tensors import SceneTensors
from trimodal.data.transforms import ImageTransform
from trimodal.losses.alignment import contrastive_loss
from trimodal.losses.bind import BindTargets
from trimodal.losses.contrastive import pair_key
from trimodal.losses.step import FrozenOutputs, StepInputs
from trimodal.modalities import registered_modalities
from trimodal.models.trimodal import TriModalModel
from trimodal.world.caption_pool import CaptionPool
from trimodal.world.question_pool import QuestionPool

if TYPE_CHECKING:
    from trimodal.train.stages.base import Stage, StageLoss


def contrastive_pairs(names: list[str]) -> list[tuple[str, str]]:
    """``train.align.pairs`` (``"image-text"``, ...) as modality pairs; malformed ones are errors."""
    pairs = []
    for name in names:
        first, _, second = name.partition("-")
        if not second or {first, second} - {m.name for m in registered_modalities()}:
            raise ValueError(
                f"train.align.pairs: {name!r} is not of the form image-text/audio-text/audio-image"
            )
        pairs.append((first, second))
    return pairs


def contrastive_anchors(align: AlignConfig) -> dict[str, str]:
    """``train.align.anchors`` keyed by :func:`pair_key` (either order may be written); each
    must name a pair of ``train.align.pairs`` and one of its two modalities."""
    pairs = {pair_key(*pair): pair for pair in contrastive_pairs(align.pairs)}
    anchors = {}
    for name, modality in align.anchors.items():
        first, _, second = name.partition("-")
        key = pair_key(first, second)
        if key not in pairs:
            raise ValueError(
                f"train.align.anchors: {name!r} is not one of train.align.pairs {align.pairs}"
            )
        if modality not in pairs[key]:
            raise ValueError(
                f"train.align.anchors: the anchor of {name!r} must be {first!r} or {second!r}, "
                f"got {modality!r}"
            )
        anchors[key] = modality
    return anchors


class TrainStep(nn.Module):
    """The whole loss of one step; see the module docstring."""

    def __init__(
        self,
        model: TriModalModel,
        weighting: nn.Module | None,
        config: Config,
        distributed: bool,
        pool: QuestionPool | None = None,
        reason_pool: QuestionPool | None = None,
        caption_pool: CaptionPool | None = None,
    ):
        super().__init__()
        self.pool, self.reason_pool, self.caption_pool = pool, reason_pool, caption_pool
        self.frozen: dict[str, FrozenOutputs] = {}
        """Fixed encoder outputs, set by the trainer for stages that read frozen towers."""
        self.bind_targets: BindTargets | None = None
        """The bind stage's fixed features and anchors, set at its start."""
        self.pairs = contrastive_pairs(config.train.align.pairs)
        for pair in self.pairs:
            if missing := [m for m in pair if m not in model.encoders]:
                raise ValueError(
                    f"train.align.pairs: {'-'.join(pair)!r} needs a {missing[0]} encoder, which "
                    f"this recipe's model has not (enable model.{missing[0]})"
                )
        self.anchors = contrastive_anchors(config.train.align)
        self.model, self.weighting, self.config, self.distributed = (
            model,
            weighting,
            config,
            distributed,
        )
        self.augment = (
            ImageTransform(size=config.data.image_size, augment=True)
            if config.data.augment
            else None
        )
        data = config.data
        pixels = PixelAugment(
            data.augment_noise,
            data.augment_blur,
            data.augment_probability,
            data.augment_noise_views,
        )
        self.corrupt = pixels if pixels.active else None
        self.hear = audio_augment(data)

    def forward(
        self,
        tensors: SceneTensors,
        rows: torch.Tensor,
        stage: Stage,
        active: list[str],
        generator: torch.Generator,
    ) -> StageLoss:
        """Returns (total loss, unweighted parts, weights) of ``stage``'s ``active`` tasks."""
        step = StepInputs(
            self.model,
            tensors,
            rows,
            generator,
            self.augment,
            corrupt=self.corrupt,
            hear=self.hear,
        )
        return stage.loss(self, step, active)

    def contrastive(self, step: StepInputs) -> tuple[torch.Tensor, dict[str, float]]:
        """The ``train.align`` contrastive loss and its per-pair parts (``contrastive/a-b``)."""
        align = self.config.train.align
        total, pair_parts = contrastive_loss(
            step,
            self.pairs,
            align.loss,
            align.margin,
            self.distributed,
            self.anchors,
            align.anchor_gradient,
        )
        return total, {f"contrastive/{k}": float(v.detach()) for k, v in pair_parts.items()}
