"""Tensorized manifests agree with direct decoding of the files, and the cache round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trimodal.data.manifest import load_manifest
from trimodal.data.tensors import (
    OBJECT_GROUPS,
    attribute_groups,
    attribute_names,
    build_scene_tensors,
    cached_scene_tensors,
    content_key,
    load_scene_tensors,
    save_scene_tensors,
)
from trimodal.data.tokenizer import manifest_texts, train_tokenizer
from trimodal.data.transforms import LogMel, load_audio
from trimodal.world.generate import WorldSummary


def test_tensors_match_direct_decoding(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    world, _ = tiny_world
    manifest = load_manifest(world / "manifest.jsonl")
    tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=300)
    answers = sorted({q.answer for s in manifest.samples for q in s.questions})
    attributes = attribute_names(manifest.samples)
    tensors = build_scene_tensors(manifest, tokenizer, answers, attributes, max_text_length=128)
    log_mel = LogMel()
    for row in (0, 7, len(manifest.samples) - 1):
        sample = manifest.samples[row]
        pixels = np.array(Image.open(sample.image).convert("RGB"))
        assert torch.equal(tensors.images[row], torch.from_numpy(pixels).permute(2, 0, 1))
        ids = tensors.caption_ids[row][tensors.caption_mask[row]].tolist()
        assert tokenizer.decode(ids) == sample.text
        expected = log_mel(load_audio(sample.audio))
        features, mask = tensors.caption_audio.batch(torch.tensor([row]))
        assert features.shape[-1] == expected.shape[-1] and mask.all()
        assert torch.allclose(features[0], expected, atol=0.02)  # stored as float16
        for q, question in enumerate(sample.questions):
            assert answers[int(tensors.answers[row, q])] == question.answer
        spoken = [q for q, question in enumerate(sample.questions) if question.spoken_question]
        assert int(tensors.spoken_index[row]) == spoken[0]
        objects = sample.scene["objects"]
        on = {attributes[i] for i in torch.nonzero(tensors.attributes[row]).flatten().tolist()}
        by_hand = {f"color:{o['color']}" for o in objects} | {
            f"shape:{o['shape']}" for o in objects
        }
        by_hand |= {f"size:{o['size']}" for o in objects} | {
            f"count:{['one', 'two', 'three'][len(objects) - 1]}"
        }
        assert on == by_hand
    for modality in ("image", "text", "audio"):
        expected = [getattr(sample, modality) is not None for sample in manifest.samples]
        assert tensors.has(modality).tolist() == expected
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        tensors.has("video")
        groups = attribute_groups(attributes)
        for k, obj in enumerate(objects):
            box = tensors.object_boxes[row, k].tolist()
            assert box == pytest.approx([obj["x"], obj["y"], obj["radius"]], abs=1e-6)
            names = [
                groups[g][int(i)]
                for g, i in zip(OBJECT_GROUPS, tensors.object_labels[row, k].tolist(), strict=True)
            ]
            assert names == [obj["color"], obj["shape"], obj["size"]]
        assert (tensors.object_labels[row, len(objects) :] == -1).all()
    assert (tensors.object_motions == -1).all()  # a world without clips records no motion
    save_scene_tensors(tensors, tmp_path / "t.safetensors")
    loaded = load_scene_tensors(tmp_path / "t.safetensors")
    assert loaded.ids == tensors.ids and loaded.content_keys == tensors.content_keys
    assert torch.equal(loaded.caption_audio.frames, tensors.caption_audio.frames)
    assert torch.equal(loaded.question_ids, tensors.question_ids)
    assert torch.equal(loaded.object_labels, tensors.object_labels)
    assert torch.equal(loaded.object_boxes, tensors.object_boxes)
    assert torch.equal(loaded.object_motions, tensors.object_motions)
    cached = cached_scene_tensors(
        manifest, tokenizer, answers, attributes, cache_dir=tmp_path / "cache"
    )
    again = cached_scene_tensors(
        manifest, tokenizer, answers, attributes, cache_dir=tmp_path / "cache"
    )
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert torch.equal(cached.images, again.images)


def test_content_key_ignores_wording_and_order(tiny_world: tuple[Path, WorldSummary]) -> None:
    world, _ = tiny_world
    sample = load_manifest(world / "manifest.jsonl").samples[0]
    reordered = dict(sample.scene)
    reordered["objects"] = list(reversed(sample.scene["objects"]))
    count = len(reordered["objects"])
    reordered["relations"] = [
        {
            "subject": count - 1 - r["subject"],
            "relation": r["relation"],
            "object": count - 1 - r["object"],
        }
        for r in sample.scene["relations"]
    ]
    from dataclasses import replace

    assert content_key(replace(sample, scene=reordered, text="other words")) == content_key(sample)
    moved = [
        dict(r, relation="above" if r["relation"] != "above" else "below")
        for r in sample.scene["relations"]
    ]
    if moved:
        assert content_key(
            replace(sample, scene=dict(sample.scene, relations=moved))
        ) != content_key(sample)


def _small_world_copy(world: Path, folder: Path, rows: int = 6) -> Path:
    """A manifest of the first ``rows`` scenes with copies of their media (paths relative)."""
    import json
    import shutil

    folder.mkdir()
    lines = (world / "manifest.jsonl").read_text().splitlines()[:rows]
    for line in lines:
        row = json.loads(line)
        files = [row.get("image"), row.get("audio")]
        files += [q.get("spoken_question") for q in row.get("questions", [])]
        for name in filter(None, files):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(world / name, folder / name)
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


def test_a_file_replaced_on_disk_rebuilds_the_cache(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    manifest = load_manifest(_small_world_copy(tiny_world[0], tmp_path / "data"))
    tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=300)
    answers = sorted({q.answer for s in manifest.samples for q in s.questions})
    attributes = attribute_names(manifest.samples)
    first = cached_scene_tensors(manifest, tokenizer, answers, attributes)
    image = manifest.samples[0].image
    assert image is not None
    Image.new("RGB", (64, 64), (255, 0, 255)).save(image)  # same name, new pixels
    second = cached_scene_tensors(manifest, tokenizer, answers, attributes)
    assert not torch.equal(first.images[0], second.images[0])
    assert second.images[0, :, 0, 0].tolist() == [255, 0, 255]
    assert torch.equal(first.images[1:], second.images[1:])
    assert len(list((manifest.root / ".cache").iterdir())) == 2


def test_a_dataset_that_cannot_hold_a_cache_uses_the_user_cache(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = load_manifest(_small_world_copy(tiny_world[0], tmp_path / "data"))
    (manifest.root / ".cache").write_text("not a folder")  # as a read-only mount refuses mkdir
    monkeypatch.setenv("TRIMODAL_CACHE", str(tmp_path / "user"))
    tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=300)
    answers = sorted({q.answer for s in manifest.samples for q in s.questions})
    attributes = attribute_names(manifest.samples)
    built = cached_scene_tensors(manifest, tokenizer, answers, attributes)
    (cached,) = (tmp_path / "user" / "tensors").iterdir()
    again = cached_scene_tensors(manifest, tokenizer, answers, attributes)
    assert torch.equal(built.images, again.images)
    assert list((tmp_path / "user" / "tensors").iterdir()) == [cached]
    monkeypatch.setenv("TRIMODAL_CACHE", str(manifest.root / ".cache" / "x"))  # nowhere writable
    with pytest.warns(UserWarning, match="tensor cache could not be written"):
        cached_scene_tensors(manifest, tokenizer, [*answers, "extra"], attributes)


def test_tensors_built_under_autocast_equal_those_built_without(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    # `trimodal eval` runs under the model's autocast; on a CPU where `auto` picks bf16 the
    # first evaluation of a world built its tensor cache there, and torch.cat of the float16
    # log-mel rows failed inside autocast.
    plain_copy = load_manifest(_small_world_copy(tiny_world[0], tmp_path / "plain"))
    autocast_copy = load_manifest(_small_world_copy(tiny_world[0], tmp_path / "autocast"))
    tokenizer = train_tokenizer(manifest_texts(plain_copy), vocab_size=300)
    answers = sorted({q.answer for s in plain_copy.samples for q in s.questions})
    attributes = attribute_names(plain_copy.samples)
    plain = cached_scene_tensors(plain_copy, tokenizer, answers, attributes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        built = cached_scene_tensors(autocast_copy, tokenizer, answers, attributes)
    assert built.caption_audio.frames.dtype == torch.float16
    assert torch.equal(built.caption_audio.frames, plain.caption_audio.frames)
    assert torch.equal(built.spoken_audio.frames, plain.spoken_audio.frames)
    assert torch.equal(built.images, plain.images)
