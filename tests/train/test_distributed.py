"""The same entry point under torchrun: 2 processes, gloo, tiny recipe."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from trimodal.world.generate import WorldSummary

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_ddp_run_trains_and_checkpoints(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    world, _ = tiny_world
    run = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "trimodal.cli.main",
        "train",
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--world",
        str(world),
        "--out",
        str(run),
        "--quiet",
    ]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert all(torch.isfinite(value).all() for value in weights.values())
    records = (run / "metrics.jsonl").read_text().splitlines()
    assert records, "rank 0 logs metrics"


def _torchrun(processes: int, arguments: list[str], port: int) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={processes}",
        f"--master_port={port}",
        "-m",
        "trimodal.cli.main",
        *arguments,
    ]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, cwd=ROOT
    )


def test_a_checkpoint_of_two_ranks_resumes_on_one_and_back(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    """N ranks -> M: rank 0 saves whole weights and optimizer state, so a run stopped under
    two processes resumes in one, and one stopped alone resumes under two."""
    world, _ = tiny_world
    run = tmp_path / "moved"
    train = ["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "--world", str(world)]
    first = _torchrun(2, [*train, "--out", str(run), "--quiet", "--max-steps", "3"], 29531)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((run / "checkpoint" / "metrics.json").read_text())["global_step"] == 3
    alone = [*train, "--out", str(run), "--quiet", "--resume", "--max-steps", "6"]
    second = subprocess.run(
        [sys.executable, "-m", "trimodal.cli.main", *alone],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((run / "checkpoint" / "metrics.json").read_text())["global_step"] == 6
    third = _torchrun(2, [*train, "--out", str(run), "--quiet", "--resume"], 29533)
    assert third.returncode == 0, third.stderr[-3000:]
    summary = json.loads(third.stdout[third.stdout.index("{") :])
    assert summary["global_step"] == sum(summary["stages"].values())
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert all(torch.isfinite(value).all() for value in weights.values())
    steps = [json.loads(line)["global_step"] for line in (run / "metrics.jsonl").open()]
    assert steps == list(range(summary["global_step"]))  # every step logged once (log_every 1)


def test_fsdp_trains_and_its_checkpoint_resumes_under_ddp_and_back(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    """FSDP2 (``train.sharding=fsdp``) at 2 processes on gloo: it trains through a stage
    boundary, writes the same checkpoint format as DDP (whole weights, integer optimizer ids),
    and a run moves FSDP -> DDP -> FSDP by ``--resume``, logging every step once."""
    world, _ = tiny_world
    run = tmp_path / "fsdp"
    train = ["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "--world", str(world)]
    fsdp = ["--set", "train.sharding=fsdp"]
    total = None
    for port, (engine, more) in enumerate(
        [(fsdp, ["--max-steps", "7"]), ([], ["--resume", "--max-steps", "9"]), (fsdp, ["--resume"])]
    ):
        result = _torchrun(2, [*train, *engine, "--out", str(run), "--quiet", *more], 29541 + port)
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        total = summary["global_step"]
    assert total is not None and total == sum(summary["stages"].values())
    weights = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert all(torch.isfinite(value).all() for value in weights.values())
    steps = [json.loads(line)["global_step"] for line in (run / "metrics.jsonl").open()]
    assert steps == list(range(total))
    losses = [json.loads(line)["loss"]["total"] for line in (run / "metrics.jsonl").open()]
    assert all(math.isfinite(loss) for loss in losses)


def test_fsdp_and_ddp_take_the_same_first_steps(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    """Sharding changes where the state lives, not the arithmetic: the logged losses of the
    first steps agree with DDP's to float rounding."""
    world, _ = tiny_world
    losses = {}
    for port, engine in enumerate(("ddp", "fsdp")):
        run = tmp_path / engine
        arguments = ["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "--world"]
        arguments += [str(world), "--out", str(run), "--quiet", "--max-steps", "4"]
        result = _torchrun(2, [*arguments, "--set", f"train.sharding={engine}"], 29551 + port)
        assert result.returncode == 0, result.stderr[-3000:]
        losses[engine] = [
            json.loads(line)["loss"]["total"] for line in (run / "metrics.jsonl").open()
        ]
    assert len(losses["fsdp"]) == 4
    for ddp, fsdp in zip(losses["ddp"], losses["fsdp"], strict=True):
        assert abs(ddp - fsdp) < 1e-4 * max(1.0, abs(ddp))
