"""Converters from COCO captions, VQA v2 and audio-caption CSVs into manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trimodal.data.converters import (
    ConversionError,
    audio_captions_csv_to_manifest,
    coco_captions_to_manifest,
    vqa_to_manifest,
)
from trimodal.data.manifest import load_manifest


def _read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# COCO captions


COCO = {
    "images": [
        {"id": 10, "file_name": "000010.png", "width": 8, "height": 8},
        {"id": 20, "file_name": "sub/000020.png", "width": 8, "height": 8},
    ],
    "annotations": [
        {"id": 1, "image_id": 10, "caption": "A red circle. "},
        {"id": 2, "image_id": 20, "caption": "a blue square"},
        {"id": 3, "image_id": 10, "caption": "  a round red thing"},
    ],
}


def test_coco_one_row_per_caption(tmp_path: Path, make_png) -> None:
    image_dir = tmp_path / "coco" / "val2014"
    make_png(image_dir / "000010.png", color=(255, 0, 0))
    make_png(image_dir / "sub" / "000020.png", color=(0, 0, 255))
    source = _write_json(tmp_path / "coco" / "captions.json", COCO)
    out = tmp_path / "out" / "nested" / "manifest.jsonl"

    count = coco_captions_to_manifest(source, image_dir, out, split="val")

    assert count == 3
    rows = _read_rows(out)
    assert [row["id"] for row in rows] == ["coco-1", "coco-2", "coco-3"]
    assert [row["text"] for row in rows] == ["A red circle.", "a blue square", "a round red thing"]
    assert {row["split"] for row in rows} == {"val"}
    assert [row["meta"] for row in rows] == [{"image_id": 10}, {"image_id": 20}, {"image_id": 10}]
    # Paths are relative to the manifest's folder and point at the right files.
    assert rows[0]["image"] == "../../coco/val2014/000010.png"
    assert rows[1]["image"] == "../../coco/val2014/sub/000020.png"
    for row, name in zip(rows, ["000010.png", "sub/000020.png", "000010.png"], strict=True):
        assert not Path(row["image"]).is_absolute()
        assert (out.parent / row["image"]).resolve() == (image_dir / name).resolve()

    manifest = load_manifest(out)
    assert [sample.id for sample in manifest.samples] == ["coco-1", "coco-2", "coco-3"]
    assert manifest.samples[1].image is not None
    assert manifest.samples[1].image.resolve() == (image_dir / "sub" / "000020.png").resolve()
    assert manifest.samples[2].text == "a round red thing"


def test_coco_annotation_without_id_uses_its_index(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [{"image_id": 1, "caption": "x"}, {"image_id": 1, "caption": "y"}],
    }
    out = tmp_path / "m.jsonl"
    coco_captions_to_manifest(_write_json(tmp_path / "c.json", data), tmp_path, out)
    assert [row["id"] for row in _read_rows(out)] == ["coco-0", "coco-1"]
    assert {row["split"] for row in _read_rows(out)} == {"train"}


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["annotations"][1].pop("caption"), "annotations[1].caption: missing"),
        (lambda d: d["annotations"][1].update(caption=7), "annotations[1].caption: wrong type"),
        (lambda d: d["annotations"][2].update(image_id=99), "annotations[2].image_id: no image"),
        (lambda d: d["annotations"][0].update(image_id="10"), "annotations[0].image_id: wrong"),
        (lambda d: d["annotations"].append("oops"), "annotations[3]: expected an object"),
        (lambda d: d["images"][1].pop("file_name"), "images[1].file_name: missing"),
        (lambda d: d.pop("annotations"), ".annotations: missing required field"),
        (lambda d: d.update(images={}), ".images: wrong type dict"),
    ],
)
def test_coco_errors_name_file_and_record(tmp_path: Path, mutate, fragment: str) -> None:
    data = json.loads(json.dumps(COCO))
    mutate(data)
    source = _write_json(tmp_path / "captions.json", data)
    out = tmp_path / "manifest.jsonl"
    with pytest.raises(ConversionError) as info:
        coco_captions_to_manifest(source, tmp_path, out)
    message = str(info.value)
    assert str(source) in message
    assert fragment in message
    assert not out.exists()


def test_coco_invalid_json(tmp_path: Path) -> None:
    source = tmp_path / "captions.json"
    source.write_text('{\n  "images": [\n  }', encoding="utf-8")
    with pytest.raises(ConversionError) as info:
        coco_captions_to_manifest(source, tmp_path, tmp_path / "m.jsonl")
    assert f"{source}:3: invalid JSON" in str(info.value)


def test_coco_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="file not found"):
        coco_captions_to_manifest(tmp_path / "absent.json", tmp_path, tmp_path / "m.jsonl")


# ---------------------------------------------------------------------------------------------
# VQA v2


VQA_QUESTIONS = {
    "questions": [
        {"question_id": 501, "image_id": 5, "question": "What color is it?"},
        {"question_id": 301, "image_id": 3, "question": "Is it round?"},
        {"question_id": 502, "image_id": 5, "question": "How many?"},
    ]
}
VQA_ANNOTATIONS = {
    "annotations": [
        {"question_id": 301, "multiple_choice_answer": "yes", "answer_type": "yes/no"},
        {"question_id": 501, "multiple_choice_answer": "red", "answer_type": "other"},
        {"question_id": 502, "multiple_choice_answer": "2"},
    ]
}


def test_vqa_one_row_per_image(tmp_path: Path, make_png) -> None:
    image_dir = tmp_path / "images"
    make_png(image_dir / "img_003.png")
    make_png(image_dir / "img_005.png")
    questions = _write_json(tmp_path / "q.json", VQA_QUESTIONS)
    annotations = _write_json(tmp_path / "a.json", VQA_ANNOTATIONS)
    out = tmp_path / "out" / "manifest.jsonl"

    count = vqa_to_manifest(
        questions, annotations, image_dir, out, split="test", image_pattern="img_{image_id:03d}.png"
    )

    assert count == 2
    rows = _read_rows(out)
    assert rows == [
        {
            "id": "vqa-3",
            "split": "test",
            "image": "../images/img_003.png",
            "questions": [{"question": "Is it round?", "answer": "yes", "family": "yes/no"}],
        },
        {
            "id": "vqa-5",
            "split": "test",
            "image": "../images/img_005.png",
            "questions": [
                {"question": "What color is it?", "answer": "red", "family": "other"},
                {"question": "How many?", "answer": "2"},
            ],
        },
    ]
    manifest = load_manifest(out)
    assert [len(sample.questions) for sample in manifest.samples] == [1, 2]
    assert manifest.samples[1].questions[1].family is None


def test_vqa_default_image_pattern(tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    vqa_to_manifest(
        _write_json(tmp_path / "q.json", VQA_QUESTIONS),
        _write_json(tmp_path / "a.json", VQA_ANNOTATIONS),
        tmp_path / "val2014",
        out,
    )
    assert [row["image"] for row in _read_rows(out)] == [
        "val2014/COCO_val2014_000000000003.jpg",
        "val2014/COCO_val2014_000000000005.jpg",
    ]


def test_vqa_question_without_annotation(tmp_path: Path) -> None:
    annotations = {"annotations": VQA_ANNOTATIONS["annotations"][:2]}  # drops 502
    q_path = _write_json(tmp_path / "q.json", VQA_QUESTIONS)
    a_path = _write_json(tmp_path / "a.json", annotations)
    with pytest.raises(ConversionError) as info:
        vqa_to_manifest(q_path, a_path, tmp_path, tmp_path / "m.jsonl")
    message = str(info.value)
    assert f"{q_path}: questions[2].question_id: 502 has no annotation in {a_path}" in message


def test_vqa_annotation_missing_answer(tmp_path: Path) -> None:
    annotations = json.loads(json.dumps(VQA_ANNOTATIONS))
    del annotations["annotations"][1]["multiple_choice_answer"]
    q_path = _write_json(tmp_path / "q.json", VQA_QUESTIONS)
    a_path = _write_json(tmp_path / "a.json", annotations)
    with pytest.raises(ConversionError) as info:
        vqa_to_manifest(q_path, a_path, tmp_path, tmp_path / "m.jsonl")
    assert f"{a_path}: annotations[1].multiple_choice_answer: missing" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Audio-caption CSV


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_audiocaps_style_csv(tmp_path: Path, make_wav) -> None:
    audio_dir = tmp_path / "clips"
    make_wav(audio_dir / "abc123.wav")
    make_wav(audio_dir / "x_y-Z.wav")
    source = _write_csv(
        tmp_path / "audiocaps.csv",
        "audiocap_id,youtube_id,start_time,caption\n"
        "91,abc123,30,A dog barks\n"
        '92,x_y-Z,0," rain, then thunder "\n',
    )
    out = tmp_path / "manifest.jsonl"
    assert audio_captions_csv_to_manifest(source, audio_dir, out, split="val") == 2
    rows = _read_rows(out)
    assert rows == [
        {
            "id": "abc123-2-caption",
            "split": "val",
            "audio": "clips/abc123.wav",
            "text": "A dog barks",
        },
        {
            "id": "x_y-Z-3-caption",
            "split": "val",
            "audio": "clips/x_y-Z.wav",
            "text": "rain, then thunder",
        },
    ]
    manifest = load_manifest(out)
    assert [sample.audio for sample in manifest.samples] == [
        audio_dir / "abc123.wav",
        audio_dir / "x_y-Z.wav",
    ]


def test_audio_extension_is_configurable(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "c.csv", "youtube_id,caption\nclip1,a bell\nclip2.mp3,a horn\n")
    out = tmp_path / "m.jsonl"
    audio_captions_csv_to_manifest(source, tmp_path / "a", out, audio_extension=".flac")
    assert [row["audio"] for row in _read_rows(out)] == ["a/clip1.flac", "a/clip2.mp3"]


def test_clotho_style_csv(tmp_path: Path, make_wav) -> None:
    audio_dir = tmp_path / "clotho"
    make_wav(audio_dir / "birds.wav")
    make_wav(audio_dir / "train station.wav")
    source = _write_csv(
        tmp_path / "clotho_captions.csv",
        "file_name,caption_1,caption_2,caption_3\n"
        "birds.wav,birds sing,a bird chirps,chirping\n"
        'train station.wav,"a train, arriving",people talk,a whistle\n',
    )
    out = tmp_path / "out" / "manifest.jsonl"
    assert audio_captions_csv_to_manifest(source, audio_dir, out, split="test") == 6
    rows = _read_rows(out)
    assert [(row["id"], row["audio"], row["text"]) for row in rows] == [
        ("birds-2-caption_1", "../clotho/birds.wav", "birds sing"),
        ("birds-2-caption_2", "../clotho/birds.wav", "a bird chirps"),
        ("birds-2-caption_3", "../clotho/birds.wav", "chirping"),
        ("train station-3-caption_1", "../clotho/train station.wav", "a train, arriving"),
        ("train station-3-caption_2", "../clotho/train station.wav", "people talk"),
        ("train station-3-caption_3", "../clotho/train station.wav", "a whistle"),
    ]
    assert {row["split"] for row in rows} == {"test"}
    manifest = load_manifest(out)
    assert len(manifest.samples) == 6
    assert manifest.samples[3].audio is not None
    assert manifest.samples[3].audio.resolve() == (audio_dir / "train station.wav").resolve()


def test_csv_empty_caption_names_line_and_column(tmp_path: Path) -> None:
    source = _write_csv(
        tmp_path / "c.csv",
        "file_name,caption_1,caption_2\na.wav,one,two\nb.wav,three,  \nc.wav,,\n",
    )
    out = tmp_path / "m.jsonl"
    with pytest.raises(ConversionError) as info:
        audio_captions_csv_to_manifest(source, tmp_path, out)
    assert str(info.value) == f"{source}:3: column 'caption_2': empty caption"
    assert not out.exists()


def test_csv_short_row_is_an_empty_caption(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "c.csv", "file_name,caption_1,caption_2\na.wav,one\n")
    with pytest.raises(ConversionError, match=r":2: column 'caption_2': empty caption"):
        audio_captions_csv_to_manifest(source, tmp_path, tmp_path / "m.jsonl")


def test_csv_empty_audio_column(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "c.csv", "youtube_id,caption\nabc,x\n ,y\n")
    with pytest.raises(ConversionError) as info:
        audio_captions_csv_to_manifest(source, tmp_path, tmp_path / "m.jsonl")
    assert str(info.value) == f"{source}:3: column 'youtube_id': empty"


@pytest.mark.parametrize(
    "header", ["name,caption", "file_name,text", "file_name,captions", "", "youtube_id"]
)
def test_csv_bad_header(tmp_path: Path, header: str) -> None:
    source = _write_csv(tmp_path / "c.csv", f"{header}\na,b\n" if header else "")
    with pytest.raises(ConversionError) as info:
        audio_captions_csv_to_manifest(source, tmp_path, tmp_path / "m.jsonl")
    message = str(info.value)
    assert message.startswith(f"{source}:1: header needs an audio column")


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="file not found"):
        audio_captions_csv_to_manifest(tmp_path / "absent.csv", tmp_path, tmp_path / "m.jsonl")


def test_csv_error_line_counts_blank_lines(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "c.csv", "file_name,caption\na.wav,one\n\nb.wav,\n")
    with pytest.raises(ConversionError) as info:
        audio_captions_csv_to_manifest(source, tmp_path, tmp_path / "m.jsonl")
    assert str(info.value) == f"{source}:4: column 'caption': empty caption"


# ---------------------------------------------------------------------------------------------
# Split validation


def test_unknown_split_is_rejected_by_every_converter(tmp_path: Path) -> None:
    coco = _write_json(tmp_path / "c.json", COCO)
    q_path = _write_json(tmp_path / "q.json", VQA_QUESTIONS)
    a_path = _write_json(tmp_path / "a.json", VQA_ANNOTATIONS)
    csv_path = _write_csv(tmp_path / "c.csv", "file_name,caption\na.wav,x\n")
    out = tmp_path / "m.jsonl"
    calls = [
        lambda: coco_captions_to_manifest(coco, tmp_path, out, split="training"),
        lambda: vqa_to_manifest(q_path, a_path, tmp_path, out, split="training"),
        lambda: audio_captions_csv_to_manifest(csv_path, tmp_path, out, split="training"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="unknown split 'training'") as info:
            call()
        assert not isinstance(info.value, ConversionError)
    assert not out.exists()
