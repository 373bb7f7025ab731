"""Shared fixtures: a tiny embedded world built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trimodal.classify.examples import write_scans
from trimodal.cli.main import main
from trimodal.config import load_config
from trimodal.train.loop import train
from trimodal.world.generate import WorldConfig, WorldSummary, build_world

ROOT = Path(__file__).resolve().parents[1]

TINY_WORLD = WorldConfig(scenes=48, seed=3, image_size=64)

TINY_VIDEO_TOWER = [
    "model.video.depth=1",
    "model.video.heads=2",
    "model.video.kind=conv",
    "model.video.stem_channels=[8, 8]",
    "model.video.frames=4",
    "model.video.tubelet=1",
]
"""Overrides that give the tiny recipe a small conv video tower over 4 frames."""


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    """A 48-scene world (all splits present) and its summary."""
    root = tmp_path_factory.mktemp("world")
    return root, build_world(root, TINY_WORLD, workers=2)


@pytest.fixture(scope="session")
def tiny_run(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny recipe trained on the tiny world (seconds)."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    train(load_config(ROOT / "configs" / "tiny.yaml"), tiny_world[0], run, progress=False)
    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip, saying why, where torch sees no CUDA GPU."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run benchmarks/gpu_check.sh on one)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


CLASSIFY_TINY_TRAIN = ["--epochs", "12", "--image-size", "32", "--dim", "48", "--quiet"]
CLASSIFY_COLUMNS = ["--image-col", "path", "--text-col", "report", "--label-col", "finding"]


@pytest.fixture(scope="session")
def scans_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 generated scans with reports (``data.csv`` beside ``images/``)."""
    return write_scans(tmp_path_factory.mktemp("scans"), count=400, seed=0)


@pytest.fixture(scope="session")
def scans_run(scans_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fused model and both baselines trained by ``trimodal classify train``."""
    out = tmp_path_factory.mktemp("classify") / "run"
    status = main(
        [
            "classify",
            "train",
            "--csv",
            str(scans_csv),
            *CLASSIFY_COLUMNS,
            "--out",
            str(out),
            *CLASSIFY_TINY_TRAIN,
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="session")
def home_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny room world (48 / 6 / 24 scenes) and a home run trained on it for 2 epochs."""
    root = tmp_path_factory.mktemp("home")
    world, run = root / "world", root / "run"
    argv = ["home", "world", "--out", str(world), "--train", "48", "--val", "6", "--test", "24"]
    assert main([*argv, "--workers", "1"]) == 0
    recipe = root / "tiny.yaml"
    recipe.write_text("epochs: 2\ndim: 32\ndepth: 1\nbatch_size: 16\n")
    train = ["home", "train", "--world", str(world), "--out", str(run), "--config", str(recipe)]
    assert main([*train, "--quiet", "--device", "cpu"]) == 0
    return world, run
