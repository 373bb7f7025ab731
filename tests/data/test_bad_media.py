"""Ordinary bad media (empty, truncated, mislabeled files, decompression bombs, NaN audio) give
one-line errors naming the file wherever they are read: transforms, manifest validation (with
``--on-error skip`` skipping exactly that row) and the CLI -- never a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from trimodal.cli.main import main
from trimodal.data.manifest import load_manifest
from trimodal.data.transforms import MAX_IMAGE_PIXELS, ImageTransform, open_image
from trimodal.world.generate import WorldSummary


def bad_images(folder: Path) -> dict[str, Path]:
    """Files that must be refused, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(good, format="PNG")
    files = {
        "empty": b"",
        "truncated": good.getvalue()[:80],
        "text": b"this is not an image",
        "wav as png": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.png"
        paths[name].write_bytes(data)
    bomb = folder / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 M pixels in a few kB
    paths["bomb"] = bomb
    return paths


def test_every_bad_image_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    for kind, path in bad_images(tmp_path).items():
        with pytest.raises(ValueError, match=path.name) as caught:
            ImageTransform()(path)
        assert "\n" not in str(caught.value), kind
    with pytest.raises(ValueError, match="over the limit"):
        open_image(tmp_path / "bomb.png")
    with pytest.raises(FileNotFoundError, match="image file not found"):
        open_image(tmp_path / "missing.png")
    small = tmp_path / "small.png"
    Image.new("RGB", (8, 8)).save(small)
    with pytest.raises(ValueError, match="8x8 pixels, over the limit of 63"):
        open_image(small, max_pixels=63)
    assert open_image(small).size == (8, 8) and MAX_IMAGE_PIXELS == 4096 * 4096


def test_manifest_validation_names_the_line_and_skip_drops_only_that_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = bad_images(tmp_path / "images")
    good = tmp_path / "images" / "good.png"
    Image.new("RGB", (64, 64), "blue").save(good)
    nan_wav = tmp_path / "nan.wav"
    soundfile.write(nan_wav, np.full(160, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    rows = [{"id": "good", "split": "train", "image": "images/good.png", "text": "a blue square"}]
    rows += [
        {"id": kind, "split": "train", "image": f"images/{path.name}", "text": "x"}
        for kind, path in images.items()
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_manifest(manifest, on_error="skip")
    assert [s.id for s in loaded.samples] == ["good"]
    assert loaded.skipped_lines == list(range(2, 2 + len(images)))
    assert main(["manifest", str(manifest)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bomb.png" in err and "manifest.jsonl:6" in err
    assert main(["manifest", str(manifest), "--on-error", "skip"]) == 0
    out = capsys.readouterr()
    assert "skipped 5 bad row(s)" in out.out + out.err


def test_ask_on_a_bad_image_or_nan_audio_is_one_line(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = bad_images(tmp_path)
    for path in images.values():
        assert (
            main(["ask", "--checkpoint", str(tiny_run), "--image", str(path), "--text", "what?"])
            == 2
        )
        err = capsys.readouterr().err.strip()
        assert err.startswith("trimodal ask: error:") and path.name in err and "\n" not in err
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64)).save(good)
    nan_wav = tmp_path / "nan.wav"
    soundfile.write(nan_wav, np.full(160, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    assert (
        main(["ask", "--checkpoint", str(tiny_run), "--image", str(good), "--audio", str(nan_wav)])
        == 2
    )
    assert "non-finite samples" in capsys.readouterr().err


def test_manifest_validation_reads_float_audio_for_nan(tmp_path: Path) -> None:
    nan_wav, good_wav = tmp_path / "nan.wav", tmp_path / "good.wav"
    soundfile.write(
        nan_wav, np.array([0.0, np.inf, np.nan], dtype=np.float32), 16_000, subtype="FLOAT"
    )
    soundfile.write(good_wav, np.zeros(160, dtype=np.float32), 16_000, subtype="FLOAT")
    rows = [
        {"id": "good", "split": "train", "audio": "good.wav", "text": "x"},
        {"id": "nan", "split": "train", "audio": "nan.wav", "text": "y"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_manifest(manifest, on_error="skip")
    assert [s.id for s in loaded.samples] == ["good"]
    (issue,) = loaded.skipped
    assert issue.line == 2 and "2 non-finite samples" in str(issue)


def test_manifest_validation_refuses_clips_longer_than_the_tower_reads(tmp_path: Path) -> None:
    # 40.95 s is the default tower's limit (4,096 frames at a 10 ms hop); 41 s is over it, from
    # the header (the 16-bit samples are never read).
    for name, seconds in (("fits.wav", 40.9), ("long.wav", 41.0)):
        samples = np.zeros(int(seconds * 16_000), dtype=np.int16)
        soundfile.write(tmp_path / name, samples, 16_000, subtype="PCM_16")
    rows = [
        {"id": "fits", "split": "train", "audio": "fits.wav", "text": "x"},
        {"id": "long", "split": "train", "audio": "long.wav", "text": "y"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_manifest(manifest, on_error="skip")
    assert [s.id for s in loaded.samples] == ["fits"]
    (issue,) = loaded.skipped
    assert issue.line == 2 and "long.wav lasts 41.0 s; at most 40.95 s" in str(issue)


def test_a_huge_caption_is_refused_on_its_line(tmp_path: Path) -> None:
    from trimodal.data.manifest import MAX_TEXT_CHARS

    rows = [
        {"id": "ok", "split": "test", "text": "a red circle"},
        {"id": "huge", "split": "test", "text": "word " * 20_000},
        {"id": "huge-caption", "split": "test", "captions": ["fine", "x" * (MAX_TEXT_CHARS + 1)]},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_manifest(manifest, on_error="skip")
    assert [s.id for s in loaded.samples] == ["ok"]
    assert loaded.skipped_lines == [2, 3]
    assert "100000 characters; at most 10000 are read" in str(loaded.skipped[0])


def test_training_names_the_manifest_line_of_a_file_it_cannot_decode(
    tiny_world: tuple[Path, WorldSummary], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = tiny_world[0]
    rows = [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == "train"][:8]
    for row in rows:
        row["image"], row["audio"] = str(world / row["image"]), str(world / row["audio"])
        for question in row["questions"]:
            if "spoken_question" in question:
                question["spoken_question"] = str(world / question["spoken_question"])
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(rows[0]["image"]).read_bytes()[:100])
    rows[5]["image"] = str(truncated)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")
    argv = ["train", "--config", recipe, "--world", str(manifest), "--out", str(tmp_path / "r")]
    assert main([*argv, "--max-steps", "1", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"{manifest}:6: field 'image': cannot decode image file {truncated}" in error
