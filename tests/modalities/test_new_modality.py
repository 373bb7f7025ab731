"""The measure of the registry: a fifth modality defined in this test file, with no edit to
``src/``, is validated in manifests, decoded and cached, trained by a contrastive pair, and
retrieved in both directions by the harness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import trimodal.modalities as modalities
from trimodal import Model
from trimodal.config import Config, load_config
from trimodal.data.manifest import ManifestError, load_manifest
from trimodal.eval.basic import retrieval_metrics
from trimodal.eval.harness import load_inputs
from trimodal.modalities.base import StoredModality
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.train.loop import train

ROOT = Path(__file__).resolve().parents[2]


class DepthEncoder(nn.Module):
    """Depth maps ``[B, 1, 16, 16]`` -> 16 tokens (4x4 patches) and a pooled embedding."""

    def __init__(self, dim: int, embed_dim: int):
        super().__init__()
        self.patches = nn.Conv2d(1, dim, 4, stride=4)
        self.projection = nn.Linear(dim, embed_dim)

    def forward(self, depth: torch.Tensor) -> EncoderOutput:
        tokens = self.patches(depth).flatten(2).transpose(1, 2)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
        return EncoderOutput(tokens, mask, self.projection(tokens.mean(1)))


class DepthModality(StoredModality):
    """Grayscale PNG depth maps, a manifest's ``depth`` field."""

    name = "depth"
    manifest_field = "depth"

    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        return DepthEncoder(config.model.dim, config.model.embed_dim)

    def check_file(self, path: Path) -> str | None:
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, ValueError) as error:
            return f"cannot decode depth map {path}: {error}"
        return None

    def decode(self, path: Path, config: Config) -> torch.Tensor:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L").resize((16, 16)), dtype=np.uint8)
        return torch.from_numpy(pixels.copy()).unsqueeze(0)

    def inputs(self, stored: torch.Tensor, config: Config) -> tuple[Any, ...]:
        return (stored.float() / 255.0,)

    def example_inputs(self, config: Config, batch: int, vocab_size: int) -> tuple[Any, ...]:
        return (torch.rand(batch, 1, 16, 16),)


@pytest.fixture
def depth(monkeypatch: pytest.MonkeyPatch) -> DepthModality:
    """Depth registered for this test only."""
    modality = DepthModality()
    monkeypatch.setitem(modalities._REGISTRY, modality.name, modality)
    return modality


def _dataset(root: Path, rows: int = 24) -> Path:
    """Rows with an image, a caption and a depth map that says the same (a bright square on
    the left or the right)."""
    (root / "media").mkdir(parents=True)
    lines = []
    for index in range(rows):
        side = "left" if index % 2 else "right"
        level = 60 + 8 * index
        canvas = np.full((32, 32), 20, dtype=np.uint8)
        columns = slice(2, 14) if side == "left" else slice(18, 30)
        canvas[10:22, columns] = level
        Image.fromarray(canvas).save(root / "media" / f"{index}_depth.png")
        Image.fromarray(np.stack([canvas] * 3, -1)).save(root / "media" / f"{index}.png")
        lines.append(
            {
                "id": f"row-{index}",
                "split": "train" if index < 16 else "test",
                "image": f"media/{index}.png",
                "depth": f"media/{index}_depth.png",
                "text": f"a square on the {side} at level {index}",
            }
        )
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return manifest


def test_a_new_modality_needs_no_edit_outside_its_own_code(
    depth: DepthModality, tmp_path: Path
) -> None:
    manifest_path = _dataset(tmp_path / "data")
    manifest = load_manifest(manifest_path)
    assert all(set(sample.media) == {"depth"} for sample in manifest.samples)

    overrides = ["train.stages=[align]", "train.align.pairs=[image-text, depth-text]"]
    config = load_config(ROOT / "configs" / "tiny.yaml", overrides)
    run = tmp_path / "run"
    train(config, manifest_path, run, progress=False)
    model = Model.from_pretrained(run)
    assert "depth" in model.network.encoders
    inputs = load_inputs(model, manifest_path)
    assert inputs.tensors.media["depth"].data.shape == (24, 1, 16, 16)
    rows = inputs.tensors.rows_in("test")
    with torch.no_grad():
        metrics = retrieval_metrics(model.network, inputs.tensors, rows)
    for direction in ("depth->text", "text->depth", "depth->image", "image->depth"):
        assert metrics[direction]["queries"] == 8
    embeddings = model.embed_media("depth", [tmp_path / "data" / "media" / "0_depth.png"])
    assert embeddings.shape == (1, config.model.embed_dim)


def test_its_manifest_field_is_validated_by_its_own_check(
    depth: DepthModality, tmp_path: Path
) -> None:
    manifest_path = _dataset(tmp_path / "data", rows=2)
    (tmp_path / "data" / "media" / "1_depth.png").write_bytes(b"not a png")
    with pytest.raises(
        ManifestError, match=r"manifest.jsonl:2: field 'depth': cannot decode depth"
    ):
        load_manifest(manifest_path)
