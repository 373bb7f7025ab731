"""The stage registry: every training stage, registered here explicitly.

A recipe runs the stages ``train.stages`` lists, in that order (default: vision, align,
multitask, reason, generate, bind; a stage with ``epochs: 0`` is skipped). Bind comes last by
default: it fits the final embedding space.
"""

from __future__ import annotations

from trimodal.config import Config
from trimodal.train.stages.align import AlignStage
from trimodal.train.stages.base import Stage, StageLoss
from trimodal.train.stages.bind import BindStage
from trimodal.train.stages.generate import GenerateStage
from trimodal.train.stages.multitask import MultiTaskStage
from trimodal.train.stages.reason import ReasonStage
from trimodal.train.stages.vision import VisionStage

STAGES: dict[str, type[Stage]] = {
    stage.name: stage
    for stage in (VisionStage, AlignStage, MultiTaskStage, ReasonStage, GenerateStage, BindStage)
}


def build_stages(config: Config) -> list[Stage]:
    """The recipe's stages in ``train.stages`` order, each validated; an unknown or repeated
    name is an error naming the known ones."""
    names = config.train.stages
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise ValueError(f"train.stages: unknown stage(s) {unknown} (known: {', '.join(STAGES)})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"train.stages: {repeated} listed more than once")
    stages = [STAGES[name](config) for name in names]
    for stage in stages:
        stage.validate()
    return stages


__all__ = ["STAGES", "Stage", "StageLoss", "build_stages"]
