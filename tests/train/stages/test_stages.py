"""The stage registry and what each stage trains, checked on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trimodal.config import Config, load_config
from trimodal.models.checkpoint import Vocabulary
from trimodal.models.trimodal import TriModalModel
from trimodal.train.stages import STAGES, build_stages

ROOT = Path(__file__).resolve().parents[3]


def _config(*overrides: str) -> Config:
    return load_config(ROOT / "configs" / "tiny_generate.yaml", list(overrides))


def _model(*overrides: str) -> TriModalModel:
    torch.manual_seed(0)
    return TriModalModel(_config(*overrides), 60, Vocabulary(["yes", "no"], ["color:red"]))


def _trainable(model: TriModalModel) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


def _trainable_encoders(model: TriModalModel) -> set[str]:
    return {
        name.split(".")[1]
        for name, p in model.named_parameters()
        if p.requires_grad and name.startswith("encoders.")
    }


def test_default_order_and_recipe_order() -> None:
    default = [stage.name for stage in build_stages(_config())]
    assert default == ["vision", "align", "multitask", "reason", "generate", "bind"]
    chosen = build_stages(_config("train.stages=[multitask,align]"))
    assert [stage.name for stage in chosen] == ["multitask", "align"]


def test_unknown_and_repeated_stages_are_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['warmup'\] \(known: vision"):
        build_stages(_config("train.stages=[align,warmup]"))
    with pytest.raises(ValueError, match=r"\['align'\] listed more than once"):
        build_stages(_config("train.stages=[align,multitask,align]"))


def test_each_stage_checks_its_options() -> None:
    with pytest.raises(ValueError, match=r"train\.vision\.tasks"):
        build_stages(_config("train.vision.tasks=[vqa_typed]"))
    with pytest.raises(ValueError, match=r"train\.bind: modality and anchor"):
        build_stages(_config("train.bind.anchor=audio"))
    with pytest.raises(ValueError, match=r"train\.generate\.task_weights"):
        build_stages(_config("train.generate.task_weights={caption: -1}"))
    # a stage the recipe leaves out is not checked
    build_stages(_config("train.stages=[align]", "train.vision.tasks=[vqa_typed]"))


def test_what_each_stage_trains() -> None:
    model = _model()
    stages = {stage.name: stage for stage in build_stages(_config())}
    everything = {name.split(".")[0] for name, _ in model.named_parameters()}
    for name in ("vision", "align", "multitask"):
        stages[name].set_trainable(model)
        assert _trainable(model) == everything, name
    stages["reason"].set_trainable(model)
    assert _trainable_encoders(model) == {"text"}
    assert not {"projector", "decoder"} & _trainable(model)
    assert {"fusion", "backbone", "answer_head"} <= _trainable(model)
    stages["generate"].set_trainable(model)
    assert _trainable(model) == {"projector", "decoder"}
    stages["bind"].set_trainable(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "encoders.audio.projection.weight",
        "encoders.audio.projection.bias",
    }


def test_frozen_towers_follow_the_tasks() -> None:
    stages = {stage.name: stage for stage in build_stages(_config())}
    assert stages["multitask"].frozen_towers() == set()
    assert stages["reason"].frozen_towers() == {"image"}
    assert stages["generate"].frozen_towers() == {"image", "audio", "spoken"}
    captions = build_stages(_config("train.generate.tasks=[caption]"))
    assert {s.name: s for s in captions}["generate"].frozen_towers() == {"image"}
    spoken = build_stages(_config("train.reason.tasks=[vqa_typed,vqa_spoken,contrastive]"))
    assert {s.name: s for s in spoken}["reason"].frozen_towers() == {"image", "spoken", "audio"}
    text_only = build_stages(
        _config("train.reason.tasks=[contrastive]", "train.align.pairs=[image-text]")
    )
    assert {s.name: s for s in text_only}["reason"].frozen_towers() == {"image"}


def test_a_task_checks_what_it_needs() -> None:
    with pytest.raises(ValueError, match=r"has 'transcribe' but model\.transcriber_depth is 0"):
        build_stages(_config("train.reason.tasks=[transcribe]"))
    build_stages(_config("train.reason.tasks=[transcribe]", "model.transcriber_depth=1"))


def test_every_registered_stage_has_a_recipe_section() -> None:
    config = _config()
    for name, stage in STAGES.items():
        assert stage(config).settings is getattr(config.train, name)
