"""Shared fixtures: a tiny embedded world built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from trimodal.world.generate import WorldConfig, WorldSummary, build_world

TINY_WORLD = WorldConfig(scenes=48, seed=3, image_size=64)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    """A 48-scene world (all splits present) and its summary."""
    root = tmp_path_factory.mktemp("world")
    return root, build_world(root, TINY_WORLD, workers=2)
