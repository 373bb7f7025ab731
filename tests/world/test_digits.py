"""The digits world: a valid manifest, deterministic bytes, a stratified half split."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from trimodal.data.manifest import load_manifest
from trimodal.world.digits import (
    CAPTION_TEMPLATES,
    DIGIT_NAMES,
    DigitsSummary,
    build_digits,
    class_prompts,
    load_source,
    render_digit,
    stratified_halves,
)

LIMIT = 24


@pytest.fixture(scope="module")
def digits_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DigitsSummary]:
    """The first 24 digits, seed 3, built with two workers."""
    root = tmp_path_factory.mktemp("digits")
    return root, build_digits(root, seed=3, workers=2, limit=LIMIT)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "summary.json"  # the summary records timings
    }


def test_manifest_is_valid_and_rows_carry_labels(
    digits_world: tuple[Path, DigitsSummary],
) -> None:
    root, summary = digits_world
    manifest = load_manifest(root / "manifest.jsonl")  # decodes every image and WAV
    _, labels = load_source(LIMIT)
    assert len(manifest.samples) == LIMIT and not manifest.skipped
    for sample, label in zip(manifest.samples, labels, strict=True):
        assert sample.label == int(label) and sample.meta["source_index"] == int(sample.id[-6:])
        assert DIGIT_NAMES[int(label)] in (sample.text or "").split()
        assert sample.split in ("train", "test") and sample.modalities == ("image", "audio", "text")
    assert summary.samples_per_split == {"train": 12, "test": 12}
    wav = soundfile.info(str(manifest.samples[0].audio))
    assert (wav.samplerate, wav.channels, wav.subtype) == (16_000, 1, "PCM_16")
    with Image.open(manifest.samples[0].image) as image:
        assert (image.mode, image.size) == ("RGB", (64, 64))


def test_images_are_nearest_upscaled_white_ink_on_black() -> None:
    pixels = np.arange(64).reshape(8, 8) % 17  # every ink level 0-16
    array = np.asarray(render_digit(pixels, 32))
    assert array.shape == (32, 32, 3) and (array[..., 0] == array[..., 2]).all()
    blocks = array[..., 0].reshape(8, 4, 8, 4)
    assert (blocks == blocks[:, :1, :, :1]).all()  # each source pixel is a uniform 4x4 block
    assert np.array_equal(blocks[:, 0, :, 0], np.rint(pixels * 255 / 16).astype(np.uint8))


def test_same_arguments_give_identical_bytes_and_reuse_the_cache(
    digits_world: tuple[Path, DigitsSummary], tmp_path: Path
) -> None:
    root, _ = digits_world
    rebuilt = build_digits(tmp_path / "again", seed=3, workers=1, limit=LIMIT)
    assert not rebuilt.cached
    assert _digest(tmp_path / "again") == _digest(root)  # worker count must not matter
    stamp = (root / "manifest.jsonl").stat().st_mtime_ns
    assert build_digits(root, seed=3, workers=2, limit=LIMIT).cached
    assert (root / "manifest.jsonl").stat().st_mtime_ns == stamp


def test_another_seed_changes_captions_voices_and_split(tmp_path: Path) -> None:
    first = build_digits(tmp_path / "a", seed=0, workers=1, limit=8)
    second = build_digits(tmp_path / "b", seed=1, workers=1, limit=8)
    assert first.config["seed"] == 0 and second.config["seed"] == 1
    rows = [
        [json.loads(line) for line in (tmp_path / name / "manifest.jsonl").read_text().splitlines()]
        for name in ("a", "b")
    ]
    assert [r["label"] for r in rows[0]] == [r["label"] for r in rows[1]]
    assert [(r["text"], r["meta"]) for r in rows[0]] != [(r["text"], r["meta"]) for r in rows[1]]


def test_split_is_a_stratified_half_and_a_pure_function_of_the_seed() -> None:
    labels = np.array([0] * 7 + [1] * 4 + [2] * 5 + [3] * 9 + [4] * 1)
    splits = stratified_halves(labels, seed=11)
    assert splits == stratified_halves(labels, seed=11)
    assert splits != stratified_halves(labels, seed=12)
    per_class = Counter((int(label), split) for label, split in zip(labels, splits, strict=True))
    for label in range(5):
        assert abs(per_class[label, "train"] - per_class[label, "test"]) <= 1
    totals = Counter(splits)
    assert set(totals) == {"train", "test"} and abs(totals["train"] - totals["test"]) <= 1


def test_full_dataset_split_is_balanced_per_class() -> None:
    _, labels = load_source()
    splits = np.array(stratified_halves(labels, seed=0))
    assert len(labels) == 1797
    train_counts = np.bincount(labels[splits == "train"], minlength=10)
    test_counts = np.bincount(labels[splits == "test"], minlength=10)
    assert np.abs(train_counts - test_counts).max() <= 1
    assert abs(int(train_counts.sum()) - int(test_counts.sum())) <= 1


def test_prompts_cover_every_class_and_template() -> None:
    prompts = class_prompts()
    assert len(prompts) == 10 and all(len(p) == len(CAPTION_TEMPLATES) for p in prompts)
    assert "a handwritten seven" in prompts[7] and "the digit seven" in prompts[7]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"image_size": 60}, "multiple of 8"), ({"limit": 1}, "limit"), ({"limit": -3}, "limit")],
)
def test_bad_arguments_are_rejected(
    tmp_path: Path, arguments: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_digits(tmp_path, **arguments)
