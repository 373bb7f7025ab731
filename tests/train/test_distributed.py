"""The same entry point under torchrun: 2 processes, gloo, tiny recipe."""

from __future__ import annotations

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
