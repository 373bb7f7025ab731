"""examples/skimage_manifest.py: a valid real-photo manifest built offline from scikit-image."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from trimodal.data.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", ROOT / "examples" / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_skimage_manifest(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    example = _example("skimage_manifest.py")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = example.build_manifest(tmp_path, max_side=96)
    # every listed photo must load from the wheel, offline (a failed loader warns and is skipped)
    assert not [w for w in caught if "skipping skimage.data" in str(w.message)]

    expected = {f"skimage-{photo.name}": photo for photo in example.PHOTOS}
    assert [s.id for s in manifest.samples] == list(expected)
    assert len(manifest.split("test")) == 14 and len(manifest.split("train")) == 5
    assert manifest.skipped == []
    for sample in manifest.samples:
        photo = expected[sample.id]
        assert sample.split == photo.split and sample.text == photo.caption
        assert sample.modalities == ("image", "text")
        assert 1 <= len(sample.questions) <= 2
        assert [(q.question, q.answer, q.family) for q in sample.questions] == list(photo.questions)
        assert all(q.answer and " " not in q.answer for q in sample.questions)
        assert sample.image is not None and sample.image.parent == tmp_path / "images"
        with Image.open(sample.image) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert max(image.size) <= 96

    # A rerun overwrites in place and gives the same manifest bytes.
    first = (tmp_path / "manifest.jsonl").read_bytes()
    again = example.build_manifest(tmp_path, max_side=96)
    assert (tmp_path / "manifest.jsonl").read_bytes() == first
    assert [s.id for s in again.samples] == list(expected)
    assert len(load_manifest(tmp_path / "manifest.jsonl").samples) == 19


def test_to_rgb_handles_grey_bool_and_float() -> None:
    example = _example("skimage_manifest.py")
    grey = example.to_rgb(np.full((4, 5), 7, dtype=np.uint8))
    assert grey.mode == "RGB" and grey.size == (5, 4) and grey.getpixel((0, 0)) == (7, 7, 7)
    mask = example.to_rgb(np.array([[True, False]]))
    assert mask.getpixel((0, 0)) == (255, 255, 255) and mask.getpixel((1, 0)) == (0, 0, 0)
    assert example.to_rgb(np.array([[0.5]])).getpixel((0, 0)) == (128, 128, 128)
    rgba = example.to_rgb(np.zeros((2, 2, 4), dtype=np.uint8))
    assert rgba.mode == "RGB"
