"""The search gallery: `trimodal index`, exact and HNSW search, and its checkpoint check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trimodal.cli.main import main
from trimodal.inference import Model
from trimodal.serve.app import create_app
from trimodal.serve.engine import Engine
from trimodal.serve.gallery import Gallery, index_kind, new_index
from trimodal.world.generate import WorldSummary


def test_index_verb_writes_every_modality(
    tiny_run: Path,
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "gallery"
    manifest = tiny_world[0] / "manifest.jsonl"
    index = ["index", "--checkpoint", str(tiny_run), "--manifest", str(manifest), "--out", str(out)]
    status = main([*index, "--split", "test"])
    assert status == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "gallery.json").read_text())
    tests = [json.loads(line) for line in manifest.read_text().splitlines()]
    count = sum(1 for row in tests if row["split"] == "test")
    assert {m: d["count"] for m, d in info["modalities"].items()} == {
        "text": count,
        "image": count,
        "audio": count,
    }
    assert f"image: {count} items (exact search)" in printed
    gallery = Gallery.load(out)
    assert [item["split"] for item in gallery.items["image"]] == ["test"] * count
    # rebuilding replaces the folder atomically, leaving no staging folders behind
    assert main(index) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery"]


def test_hnsw_above_the_exact_limit_finds_what_exact_search_finds() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.1 * rng.standard_normal((50, 32)).astype(np.float32)
    exact, approximate = (
        new_index(vectors, exact_limit=10_000),
        new_index(vectors, exact_limit=1000),
    )
    assert (index_kind(exact), index_kind(approximate)) == ("exact", "hnsw")
    _, truth = exact.search(queries, 10)
    naive = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert (truth == naive).mean() > 0.99  # exact search is exact (ties aside)
    _, found = approximate.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall > 0.9


def test_a_gallery_serves_only_its_checkpoint(
    head_model: Model, decoder_model: Model, gallery_folder: Path
) -> None:
    gallery = Gallery.load(gallery_folder)
    create_app(Engine(head_model, "tiny"), gallery)
    with pytest.raises(ValueError, match="built with another checkpoint"):
        create_app(Engine(decoder_model, "other"), gallery)
    with pytest.raises(FileNotFoundError, match="no gallery at"):
        Gallery.load(gallery_folder / "missing")
