"""Training on the tiny recipe: CLI smoke run, logging, resume equality, schedulers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from trimodal.cli.main import main
from trimodal.config import load_config
from trimodal.models.trimodal import TriModalModel
from trimodal.train.loop import train
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / "model.safetensors"))


def test_cli_train_writes_checkpoint_metrics_and_config(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world, _ = tiny_world
    run = tmp_path / "run"
    status = main(
        [
            "train",
            "--config",
            str(TINY),
            "--world",
            str(world),
            "--out",
            str(run),
            "--quiet",
            "--set",
            "train.multitask.weighting=dwa",
        ]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stages"]["align"] > 0 and summary["stages"]["multitask"] > 0
    assert summary["global_step"] == summary["stages"]["align"] + summary["stages"]["multitask"]
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.json",
        "metrics.json",
    ):
        assert (run / "checkpoint" / name).is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["multitask"]["weighting"] == "dwa" and saved["model"]["dim"] == 32
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    multitask = [r for r in records if r["stage"] == "multitask"]
    assert multitask, "every multitask step is logged with log_every=1"
    for task in ("contrastive", "vqa_typed", "vqa_spoken", "attributes", "objects"):
        assert task in multitask[-1]["loss"] and task in multitask[-1]["weight"]
    align = [r for r in records if r["stage"] == "align"]
    assert align and all("objects" in r["loss"] for r in align)
    assert all(r["samples_per_s"] > 0 for r in records)
    # DWA windows close during the stage, so its weights move away from the initial 1.0.
    last_weights = multitask[-1]["weight"]
    assert any(abs(w - 1.0) > 1e-4 for w in last_weights.values())
    assert sum(last_weights.values()) == pytest.approx(len(last_weights), rel=1e-4)
    assert any((run / "tensorboard").iterdir())
    model = TriModalModel.from_pretrained(run)
    assert model.tokenizer is not None and "yes" in model.vocabulary.answers
    # A second run into the same folder must not silently overwrite it.
    assert (
        main(["train", "--config", str(TINY), "--world", str(world), "--out", str(run), "--quiet"])
        == 2
    )


@pytest.mark.parametrize("weighting", ["uncertainty", "static"])
def test_resume_gives_identical_weights(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, weighting: str
) -> None:
    world, _ = tiny_world
    overrides = [f"train.multitask.weighting={weighting}", "train.multitask.scheduler=loss_driven"]
    config = load_config(TINY, overrides)
    straight = train(config, world, tmp_path / "straight", progress=False)
    total = straight["global_step"]
    align_steps = straight["stages"]["align"]
    stop = align_steps + 2  # stop in the middle of the multitask stage
    assert stop < total
    first = train(config, world, tmp_path / "resumed", max_steps=stop, progress=False)
    assert first["stopped_early"] and first["global_step"] == stop
    second = train(config, world, tmp_path / "resumed", resume=True, progress=False)
    assert second["global_step"] == total
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_across_the_stage_boundary(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    world, _ = tiny_world
    config = load_config(TINY)
    straight = train(config, world, tmp_path / "straight", progress=False)
    train(
        config, world, tmp_path / "resumed", max_steps=straight["stages"]["align"], progress=False
    )
    resumed = train(config, world, tmp_path / "resumed", resume=True, progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[name], b[name]) for name in a)
    # Every stage that ran is in the history, the one finished before the stop included, and
    # in the final checkpoint's state too.
    ran = [name for name, steps in straight["stages"].items() if steps > 0]
    assert [entry["stage"] for entry in straight["history"]] == ran
    assert [entry["stage"] for entry in resumed["history"]] == ran
    saved = json.loads((tmp_path / "resumed" / "checkpoint" / "trainer_state.json").read_text())
    assert [entry["stage"] for entry in saved["history"]] == ran
    assert all(entry["seconds"] > 0 for entry in saved["history"])


def test_resume_in_the_middle_of_the_reason_stage(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    world, _ = tiny_world
    reason = ["model.grounding_bins=4", "train.reason.epochs=1", "train.reason.batch_size=8"]
    config = load_config(TINY, reason)
    straight = train(config, world, tmp_path / "straight", progress=False)
    stages = straight["stages"]
    stop = stages["align"] + stages["multitask"] + 2
    assert stop < straight["global_step"]
    train(config, world, tmp_path / "resumed", max_steps=stop, progress=False)
    train(config, world, tmp_path / "resumed", resume=True, progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_resume_without_checkpoint_is_a_clear_error(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    world, _ = tiny_world
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(load_config(TINY), world, tmp_path / "none", resume=True, progress=False)


def test_a_non_finite_loss_stops_the_run_naming_stage_step_task_and_samples(
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trimodal.train.step import TrainStep

    original, calls = TrainStep.forward, []

    def poisoned(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        loss, parts, weights = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # the third step of the run: align step 2
            task = next(iter(parts))
            return loss * float("nan"), {**parts, task: float("nan")}, weights
        return loss, parts, weights

    monkeypatch.setattr(TrainStep, "forward", poisoned)
    world, _ = tiny_world
    run = tmp_path / "run"
    status = main(
        ["train", "--config", str(TINY), "--world", str(world), "--out", str(run), "--quiet"]
    )
    assert status == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1  # one line, no traceback
    assert "non-finite loss at stage align step 2 (global step 2)" in message
    assert "=nan" in message and "batch samples: " in message
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]  # the poisoned step was never logged


def test_a_run_saved_with_a_scalar_temperature_resumes(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    """Checkpoints written when ``temperature.logit_scale`` was 0-d (and so were its AdamW
    moments) resume now that it is ``[1]``: weights and moments are reshaped on load."""
    config = load_config(TINY)
    run = tmp_path / "old"
    train(config, tiny_world[0], run, max_steps=3, progress=False)
    checkpoint = run / "checkpoint"
    weights = load_file(str(checkpoint / "model.safetensors"))
    weights["temperature.logit_scale"] = weights["temperature.logit_scale"].reshape(())
    save_file(weights, str(checkpoint / "model.safetensors"))
    state = load_file(str(checkpoint / "trainer_state.safetensors"))
    old = {
        key: value.reshape(())
        for key, value in state.items()
        if key.startswith("optimizer.") and value.shape == (1,) and not key.endswith(".step")
    }
    assert {key.rsplit(".", 1)[1] for key in old} == {"exp_avg", "exp_avg_sq"}
    save_file(state | old, str(checkpoint / "trainer_state.safetensors"))
    summary = train(config, tiny_world[0], run, resume=True, progress=False)
    assert summary["global_step"] == sum(summary["stages"].values())
