"""Scene graphs read back from a manifest."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from trimodal.data.manifest import load_manifest
from trimodal.world.scene_graphs import manifest_scenes


def test_scenes_yield_the_rows_with_a_scene_graph(tiny_world: tuple[Path, Any]) -> None:
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    manifest.samples[1] = replace(manifest.samples[1], scene=None)  # passed over
    found = list(manifest_scenes(manifest, [0, 1, 2]))
    assert [row for row, _ in found] == [0, 2]
    for row, scene in found:
        graph = manifest.samples[row].scene
        assert graph is not None and len(scene.objects) == len(graph["objects"])
        assert scene.objects[0].color == graph["objects"][0]["color"]
