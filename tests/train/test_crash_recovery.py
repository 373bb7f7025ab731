"""Crash-safe checkpoints: a crash between the swap's two renames, stale staging folders and
kill -9 at several points all resume to the same weights as a run never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trimodal.config import load_config
from trimodal.models.checkpoint import recover_directory
from trimodal.train.loop import train
from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
EVERY_STEP = ["train.checkpoint_every=1"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / "model.safetensors"))


def _assert_same(a: Path, b: Path) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.fixture(scope="module")
def straight(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int]:
    """The tiny recipe, checkpointing every step, never interrupted: (run, total steps)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    summary = train(load_config(TINY, EVERY_STEP), tiny_world[0], run, progress=False)
    return run, int(summary["global_step"])


def test_recover_directory_restores_the_old_copy_and_clears_staging(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint"
    assert recover_directory(target) is None
    (tmp_path / ".checkpoint.old").mkdir()
    (tmp_path / ".checkpoint.old" / "model.safetensors").write_bytes(b"weights")
    (tmp_path / ".checkpoint.k3j2").mkdir()
    done = recover_directory(target)
    assert done is not None and "restored" in done and "unfinished save .checkpoint.k3j2" in done
    assert (target / "model.safetensors").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_crash_between_the_two_renames_resumes_bit_exactly(
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
    straight: tuple[Path, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = load_config(TINY, EVERY_STEP)
    run = tmp_path / "run"
    train(config, tiny_world[0], run, max_steps=straight[1] // 2, progress=False)
    # What a crash after `checkpoint -> .checkpoint.old` and before `staging -> checkpoint`
    # leaves: the previous checkpoint under its backup name and a half-written staging folder.
    os.replace(run / "checkpoint", run / ".checkpoint.old")
    (run / ".checkpoint.x1y2").mkdir()
    (run / ".checkpoint.x1y2" / "model.safetensors").write_bytes(b"half")
    train(config, tiny_world[0], run, resume=True, progress=False)
    assert "restored" in capsys.readouterr().err
    _assert_same(straight[0], run)
    assert not list(run.glob(".checkpoint.*"))


def test_kill_9_at_several_points_resumes_bit_exactly(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, straight: tuple[Path, int]
) -> None:
    command = [sys.executable, "-m", "trimodal.cli.main", "train", "--config", str(TINY)]
    command += ["--world", str(tiny_world[0]), "--quiet", "--set", *EVERY_STEP]
    total, resumed = straight[1], 0
    for number, steps in enumerate((1, 3, total // 2, total - 1)):
        run = tmp_path / f"run{number}"
        child = subprocess.Popen(
            [*command, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_steps(run / "metrics.jsonl", steps, child)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        config = load_config(TINY, EVERY_STEP)
        if (run / "checkpoint").is_dir() or (run / ".checkpoint.old").is_dir():
            train(config, tiny_world[0], run, resume=True, progress=False)
            resumed += 1
        else:  # killed during its first save: nothing to resume; a fresh run may use the folder
            train(config, tiny_world[0], run, progress=False)
        _assert_same(straight[0], run)
    assert resumed >= 3


def _wait_for_steps(metrics: Path, steps: int, child: subprocess.Popen[bytes]) -> None:
    """Until the run has logged ``steps`` steps (one line each with log_every 1)."""
    deadline = time.monotonic() + 120
    while not metrics.is_file() or len(metrics.read_text().splitlines()) < steps:
        assert child.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run did not reach the step"
        time.sleep(0.01)
