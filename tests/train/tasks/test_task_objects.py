"""Tasks as objects: each stage's table, the names a recipe may use, and what tasks read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trimodal.config import Config, load_config
from trimodal.train.stages import STAGES, build_stages
from trimodal.train.tasks import Task, TaskOutput, check_tasks

ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = {"image", "text", "audio", "question", "spoken", "video"}


def _config(*overrides: str) -> Config:
    return load_config(ROOT / "configs" / "tiny_generate.yaml", list(overrides))


def test_each_stage_lists_its_tasks_in_summing_order() -> None:
    tables = {name: list(stage.tasks) for name, stage in STAGES.items()}
    assert tables["vision"] == ["attributes", "objects"]
    assert tables["align"] == ["contrastive", "attributes", "objects", "video_objects"]
    assert tables["multitask"] == [
        "contrastive",
        "vqa_typed",
        "vqa_spoken",
        "attributes",
        "objects",
        "video_objects",
    ]
    assert tables["reason"] == ["vqa_typed", "vqa_spoken", "transcribe", "contrastive"]
    assert tables["generate"] == ["caption", "transcribe", "vqa_typed", "vqa_spoken", "dialogue"]


def test_every_task_names_itself_and_what_it_reads() -> None:
    for stage in STAGES.values():
        for name, task in stage.tasks.items():
            assert issubclass(task, Task) and task.name == name
            assert task.reads and set(task.reads) <= OUTPUTS, (stage.name, name)


def test_a_stage_refuses_tasks_it_does_not_run() -> None:
    with pytest.raises(ValueError, match=r"train\.generate\.tasks: unknown task\(s\) \['poem'\]"):
        build_stages(_config("train.generate.tasks=[caption,poem]"))
    with pytest.raises(
        ValueError, match=r"train\.align\.auxiliary: unknown task\(s\) \['contrastive'\]"
    ):
        build_stages(_config("train.align.auxiliary=[contrastive]"))
    with pytest.raises(ValueError, match=r"train\.reason\.tasks: .*choose from \['vqa_typed'"):
        build_stages(_config("train.reason.tasks=[attributes]"))


def test_check_tasks_and_single_outputs() -> None:
    check_tasks(["a"], ["a", "b"], "x")
    with pytest.raises(ValueError, match=r"x: unknown task\(s\) \['c'\]; choose from \['a', 'b'\]"):
        check_tasks(["a", "c"], ("a", "b"), "x")
    stage = build_stages(_config())[0]
    task = stage.task_objects["objects"]
    out = task.single(torch.tensor(2.0))
    assert isinstance(out, TaskOutput)
    assert (list(out.losses), out.weights, out.logged) == (["objects"], {"objects": 1.0}, {})
