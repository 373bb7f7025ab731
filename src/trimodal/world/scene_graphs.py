"""Scene graphs stored in a manifest (the world writes one per scene), read back as scenes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from trimodal.data.manifest import Manifest
from trimodal.world.scene import Scene


def manifest_scenes(manifest: Manifest, rows: Iterable[int]) -> Iterator[tuple[int, Scene]]:
    """``(row, scene graph)`` for each of ``rows`` whose sample has one, in order."""
    for row in rows:
        sample = manifest.samples[row]
        if sample.scene is not None:
            yield row, Scene.from_dict(sample.scene, sample.split)
