"""Converters from COCO captions, VQA v2, Karpathy splits and audio-caption CSVs into manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trimodal.data.converters import (
    ConversionError,
    ConversionResult,
    audio_captions_csv_to_manifest,
    coco_captions_to_manifest,
    karpathy_to_manifest,
    vqa_to_manifest,
)
from trimodal.data.manifest import load_manifest


def _read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _copy(data: Any) -> Any:
    return json.loads(json.dumps(data))


# ---------------------------------------------------------------------------------------------
# COCO captions


COCO = {
    "info": {"description": "COCO 2014 Dataset"},
    "licenses": [],
    "images": [
        {
            "id": 10,
            "file_name": "000010.png",
            "width": 8,
            "height": 6,
            "coco_url": "http://images.cocodataset.org/val2014/000010.png",
        },
        {"id": 15, "file_name": "000015.png"},  # no caption: not a row
        {"id": 20, "file_name": "sub/000020.png", "width": 8, "height": 8},
    ],
    "annotations": [
        {"id": 1, "image_id": 10, "caption": "A red circle. "},
        {"id": 2, "image_id": 20, "caption": "a blue square"},
        {"id": 3, "image_id": 10, "caption": "  a round red thing"},
    ],
}


def test_coco_one_row_per_image_with_its_captions(tmp_path: Path, make_png) -> None:
    image_dir = tmp_path / "coco" / "val2014"
    make_png(image_dir / "000010.png", color=(255, 0, 0))
    make_png(image_dir / "sub" / "000020.png", color=(0, 0, 255))
    source = _write_json(tmp_path / "coco" / "captions.json", COCO)
    out = tmp_path / "out" / "nested" / "manifest.jsonl"

    result = coco_captions_to_manifest(source, image_dir, out, split="val")

    assert result == ConversionResult(rows=2, skipped=[])
    assert _read_rows(out) == [
        {
            "id": "coco-10",
            "split": "val",
            "image": "../../coco/val2014/000010.png",
            "text": "A red circle.",
            "captions": ["A red circle.", "a round red thing"],
            "meta": {
                "image_id": 10,
                "caption_ids": [1, 3],
                "coco_url": "http://images.cocodataset.org/val2014/000010.png",
                "width": 8,
                "height": 6,
            },
        },
        {
            "id": "coco-20",
            "split": "val",
            "image": "../../coco/val2014/sub/000020.png",
            "text": "a blue square",
            "captions": ["a blue square"],
            "meta": {"image_id": 20, "caption_ids": [2], "width": 8, "height": 8},
        },
    ]
    manifest = load_manifest(out)
    assert [sample.id for sample in manifest.samples] == ["coco-10", "coco-20"]
    assert manifest.samples[0].captions == ("A red circle.", "a round red thing")
    assert manifest.samples[0].text == "A red circle."
    assert manifest.samples[1].image is not None
    assert manifest.samples[1].image.resolve() == (image_dir / "sub" / "000020.png").resolve()


def test_coco_rows_follow_images_order_and_captions_annotation_order(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 2, "file_name": "b.jpg"}, {"id": 1, "file_name": "a.jpg"}],
        "annotations": [
            {"id": 7, "image_id": 1, "caption": "one"},
            {"id": 5, "image_id": 2, "caption": "two"},
            {"id": 6, "image_id": 1, "caption": "three"},
            {"id": 4, "image_id": 2, "caption": "four"},
        ],
    }
    out = tmp_path / "m.jsonl"
    coco_captions_to_manifest(_write_json(tmp_path / "c.json", data), tmp_path, out)
    rows = _read_rows(out)
    assert [(row["id"], row["captions"], row["meta"]["caption_ids"]) for row in rows] == [
        ("coco-2", ["two", "four"], [5, 4]),
        ("coco-1", ["one", "three"], [7, 6]),
    ]


def test_coco_2017_file_names(tmp_path: Path, make_png) -> None:
    """captions_val2017.json names images ``000000397133.jpg`` with no prefix."""
    image_dir = tmp_path / "val2017"
    make_png(image_dir / "000000397133.jpg")
    data = {
        "images": [
            {
                "license": 4,
                "file_name": "000000397133.jpg",
                "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
                "height": 427,
                "width": 640,
                "date_captured": "2013-11-14 17:02:52",
                "flickr_url": "http://farm7.staticflickr.com/6116/6255196340_da26cf2c9e_z.jpg",
                "id": 397133,
            }
        ],
        "annotations": [
            {"image_id": 397133, "id": 370509, "caption": "A man is in a kitchen making pizzas."},
            {"image_id": 397133, "id": 370584, "caption": "Man in apron standing on front of oven"},
        ],
    }
    out = tmp_path / "coco.jsonl"
    result = coco_captions_to_manifest(
        _write_json(tmp_path / "captions_val2017.json", data), image_dir, out, split="test"
    )
    assert result.rows == 1
    (row,) = _read_rows(out)
    assert row["id"] == "coco-397133"
    assert row["image"] == "val2017/000000397133.jpg"
    assert row["meta"]["caption_ids"] == [370509, 370584]
    assert row["meta"]["width"] == 640 and row["meta"]["height"] == 427
    assert len(load_manifest(out).samples[0].captions) == 2


def test_coco_annotation_without_id_uses_its_index(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [{"image_id": 1, "caption": "x"}, {"image_id": 1, "caption": "y"}],
    }
    out = tmp_path / "m.jsonl"
    coco_captions_to_manifest(_write_json(tmp_path / "c.json", data), tmp_path, out)
    (row,) = _read_rows(out)
    assert row["id"] == "coco-1"
    assert row["meta"]["caption_ids"] == [0, 1]
    assert row["split"] == "train"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["annotations"][1].pop("caption"), "annotations[1].caption: missing"),
        (lambda d: d["annotations"][1].update(caption=7), "annotations[1].caption: wrong type"),
        (lambda d: d["annotations"][1].update(caption=" "), "annotations[1].caption: empty"),
        (
            lambda d: d["annotations"][2].update(image_id=99),
            "annotations[2].image_id: no image with id 99 in 'images'",
        ),
        (lambda d: d["annotations"][0].update(image_id="10"), "annotations[0].image_id: wrong"),
        (lambda d: d["annotations"][0].update(id="1"), "annotations[0].id: wrong type"),
        (lambda d: d["annotations"].append("oops"), "annotations[3]: expected an object"),
        (lambda d: d["images"][1].pop("file_name"), "images[1].file_name: missing"),
        (lambda d: d["images"][2].update(id=10), "images[2].id: duplicate image id 10"),
        (lambda d: d.pop("annotations"), ".annotations: missing required field"),
        (lambda d: d.update(images={}), ".images: wrong type dict"),
    ],
)
def test_coco_errors_name_file_and_record(tmp_path: Path, mutate, fragment: str) -> None:
    data = _copy(COCO)
    mutate(data)
    source = _write_json(tmp_path / "captions.json", data)
    out = tmp_path / "manifest.jsonl"
    with pytest.raises(ConversionError) as info:
        coco_captions_to_manifest(source, tmp_path, out)
    message = str(info.value)
    assert str(source) in message
    assert fragment in message
    assert not out.exists()


def test_coco_missing_image_message(tmp_path: Path) -> None:
    data = _copy(COCO)
    data["annotations"][2]["image_id"] = 99
    source = _write_json(tmp_path / "captions.json", data)
    with pytest.raises(ConversionError) as info:
        coco_captions_to_manifest(source, tmp_path, tmp_path / "m.jsonl")
    assert str(info.value) == f"{source}: annotations[2].image_id: no image with id 99 in 'images'"


def test_coco_skip_writes_the_rest_and_lists_the_skipped(tmp_path: Path) -> None:
    data = _copy(COCO)
    data["annotations"][1]["image_id"] = 99  # the only caption of image 20
    data["annotations"].append({"id": 8, "image_id": 10, "caption": ""})
    source = _write_json(tmp_path / "captions.json", data)
    out = tmp_path / "m.jsonl"

    result = coco_captions_to_manifest(source, tmp_path, out, on_error="skip")

    assert result.rows == 1
    assert result.skipped == [
        f"{source}: annotations[1].image_id: no image with id 99 in 'images'",
        f"{source}: annotations[3].caption: empty caption",
    ]
    (row,) = _read_rows(out)
    assert row["id"] == "coco-10"
    assert row["captions"] == ["A red circle.", "a round red thing"]
    assert row["meta"]["caption_ids"] == [1, 3]


def test_coco_file_level_errors_raise_even_when_skipping(tmp_path: Path) -> None:
    source = _write_json(tmp_path / "captions.json", {"images": []})
    with pytest.raises(ConversionError, match=r"\.annotations: missing required field"):
        coco_captions_to_manifest(source, tmp_path, tmp_path / "m.jsonl", on_error="skip")


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


def _human_answers(*answers: str) -> list[dict[str, Any]]:
    """Ten VQA v2 answer objects: ``answers`` then repeats of the last one."""
    padded = list(answers) + [answers[-1]] * (10 - len(answers))
    confidences = ["yes", "maybe", "no"]
    return [
        {"answer": text, "answer_confidence": confidences[k % 3], "answer_id": k + 1}
        for k, text in enumerate(padded)
    ]


def _vqa_files(subtype: str | None = "val2014") -> tuple[dict[str, Any], dict[str, Any]]:
    """Official-format VQA v2 question and annotation files (``subtype`` None: left out)."""
    questions: dict[str, Any] = {
        "info": {"description": "This is v2.0 of the VQA dataset."},
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "license": {"name": "Creative Commons Attribution 4.0 International License"},
        "data_subtype": subtype,
        "questions": [
            {"image_id": 5, "question": "What color is it?", "question_id": 5000},
            {"image_id": 3, "question": "Is it round?", "question_id": 3000},
            {"image_id": 5, "question": "How many?", "question_id": 5001},
        ],
    }
    annotations: dict[str, Any] = {
        "info": {"description": "This is v2.0 of the VQA dataset."},
        "license": {"name": "Creative Commons Attribution 4.0 International License"},
        "data_subtype": subtype,
        "annotations": [
            {
                "question_type": "is it",
                "multiple_choice_answer": "yes",
                "answers": _human_answers("yes", "yes", "no"),
                "image_id": 3,
                "answer_type": "yes/no",
                "question_id": 3000,
            },
            {
                "question_type": "what color is the",
                "multiple_choice_answer": "red",
                "answers": _human_answers("red", "dark red", "red"),
                "image_id": 5,
                "answer_type": "other",
                "question_id": 5000,
            },
            {
                "question_type": "how many",
                "multiple_choice_answer": "2",
                "answers": _human_answers("2", "two", "3"),
                "image_id": 5,
                "answer_type": "number",
                "question_id": 5001,
            },
        ],
        "data_type": "mscoco",
    }
    if subtype is None:
        del questions["data_subtype"], annotations["data_subtype"]
    return questions, annotations


def _write_vqa(
    tmp_path: Path, questions: dict[str, Any], annotations: dict[str, Any]
) -> tuple[Path, Path]:
    return (
        _write_json(tmp_path / "questions.json", questions),
        _write_json(tmp_path / "annotations.json", annotations),
    )


def test_vqa_keeps_every_official_field(tmp_path: Path, make_png) -> None:
    image_dir = tmp_path / "val2014"
    make_png(image_dir / "COCO_val2014_000000000003.jpg")
    make_png(image_dir / "COCO_val2014_000000000005.jpg")
    questions, annotations = _vqa_files("val2014")
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "out" / "manifest.jsonl"

    result = vqa_to_manifest(q_path, a_path, image_dir, out, split="test")

    assert result == ConversionResult(rows=2, skipped=[])
    rows = _read_rows(out)
    assert rows[0] == {
        "id": "vqa-3",
        "split": "test",
        "image": "../val2014/COCO_val2014_000000000003.jpg",
        "questions": [
            {
                "question": "Is it round?",
                "answer": "yes",
                "answers": annotations["annotations"][0]["answers"],
                "question_id": 3000,
                "question_type": "is it",
                "family": "yes/no",
            }
        ],
        "meta": {"image_id": 3, "data_type": "mscoco", "data_subtype": "val2014"},
    }
    assert rows[1]["id"] == "vqa-5"
    assert [q["question_id"] for q in rows[1]["questions"]] == [5000, 5001]
    assert rows[1]["questions"][1]["answers"] == annotations["annotations"][2]["answers"]
    assert len(rows[1]["questions"][1]["answers"]) == 10

    manifest = load_manifest(out)
    record = manifest.samples[1].questions[1]
    assert record.question == "How many?"
    assert record.answer == "2"
    assert record.family == "number"
    assert record.question_id == 5001
    assert record.question_type == "how many"
    assert record.human_answers == ("2", "two", "3", "3", "3", "3", "3", "3", "3", "3")
    assert manifest.samples[0].meta == {
        "image_id": 3,
        "data_type": "mscoco",
        "data_subtype": "val2014",
    }


def test_vqa_train2014_file_gives_train2014_image_names(tmp_path: Path) -> None:
    q_path, a_path = _write_vqa(tmp_path, *_vqa_files("train2014"))
    out = tmp_path / "m.jsonl"
    vqa_to_manifest(q_path, a_path, tmp_path / "train2014", out)
    rows = _read_rows(out)
    assert [row["image"] for row in rows] == [
        "train2014/COCO_train2014_000000000003.jpg",
        "train2014/COCO_train2014_000000000005.jpg",
    ]
    assert rows[0]["meta"]["data_subtype"] == "train2014"


def test_vqa_subtype_from_one_file_is_enough(tmp_path: Path) -> None:
    questions, annotations = _vqa_files("test-dev2015")
    del questions["data_subtype"]
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    vqa_to_manifest(q_path, a_path, tmp_path, out)
    assert _read_rows(out)[0]["image"] == "COCO_test-dev2015_000000000003.jpg"


def test_vqa_image_pattern_overrides_the_file(tmp_path: Path, make_png) -> None:
    image_dir = tmp_path / "images"
    make_png(image_dir / "img_003.png")
    make_png(image_dir / "img_005.png")
    q_path, a_path = _write_vqa(tmp_path, *_vqa_files("train2014"))
    out = tmp_path / "out" / "manifest.jsonl"
    vqa_to_manifest(q_path, a_path, image_dir, out, image_pattern="img_{image_id:03d}.png")
    assert [row["image"] for row in _read_rows(out)] == [
        "../images/img_003.png",
        "../images/img_005.png",
    ]
    assert len(load_manifest(out).samples) == 2


def test_vqa_image_pattern_may_use_the_subtype(tmp_path: Path) -> None:
    q_path, a_path = _write_vqa(tmp_path, *_vqa_files("val2015"))
    out = tmp_path / "m.jsonl"
    vqa_to_manifest(q_path, a_path, tmp_path, out, image_pattern="x_{data_subtype}_{image_id}.png")
    assert _read_rows(out)[0]["image"] == "x_val2015_3.png"


@pytest.mark.parametrize("pattern", ["{image}.jpg", "{data_subtype}_{image_id}.jpg", "{0}.jpg"])
def test_vqa_bad_image_pattern(tmp_path: Path, pattern: str) -> None:
    q_path, a_path = _write_vqa(tmp_path, *_vqa_files(None))
    with pytest.raises(ValueError, match="image_pattern") as info:
        vqa_to_manifest(q_path, a_path, tmp_path, tmp_path / "m.jsonl", image_pattern=pattern)
    assert not isinstance(info.value, ConversionError)


def test_vqa_missing_subtype_asks_for_image_pattern(tmp_path: Path) -> None:
    q_path, a_path = _write_vqa(tmp_path, *_vqa_files(None))
    out = tmp_path / "m.jsonl"
    with pytest.raises(ConversionError) as info:
        vqa_to_manifest(q_path, a_path, tmp_path, out)
    message = str(info.value)
    assert str(q_path) in message and str(a_path) in message
    assert "data_subtype" in message and "--image-pattern" in message
    assert not out.exists()
    # An explicit pattern needs no subtype; the rows then have no data_subtype in meta.
    vqa_to_manifest(q_path, a_path, tmp_path, out, image_pattern="{image_id}.jpg")
    assert _read_rows(out)[0]["meta"] == {"image_id": 3, "data_type": "mscoco"}


def test_vqa_disagreeing_subtypes(tmp_path: Path) -> None:
    questions, annotations = _vqa_files("val2014")
    annotations["data_subtype"] = "train2014"
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    for pattern in (None, "{image_id}.jpg"):
        with pytest.raises(ConversionError) as info:
            vqa_to_manifest(q_path, a_path, tmp_path, tmp_path / "m.jsonl", image_pattern=pattern)
        message = str(info.value)
        assert f"{q_path}: data_subtype 'val2014'" in message
        assert f"{a_path}: data_subtype 'train2014'" in message


def test_vqa_non_coco_data_type_needs_an_image_pattern(tmp_path: Path) -> None:
    questions, annotations = _vqa_files("val2015")
    questions["data_type"] = annotations["data_type"] = "abstract_v002"
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    with pytest.raises(ConversionError, match=r"abstract_v002.*--image-pattern"):
        vqa_to_manifest(q_path, a_path, tmp_path, tmp_path / "m.jsonl")
    out = tmp_path / "m.jsonl"
    pattern = "abstract_v002_{data_subtype}_{image_id:012d}.png"
    vqa_to_manifest(q_path, a_path, tmp_path, out, image_pattern=pattern)
    assert _read_rows(out)[0]["image"] == "abstract_v002_val2015_000000000003.png"


def test_vqa_minimal_annotations(tmp_path: Path) -> None:
    """Only question_id and multiple_choice_answer are required of an annotation."""
    questions, _ = _vqa_files("val2014")
    annotations = {
        "annotations": [
            {"question_id": 3000, "multiple_choice_answer": "yes"},
            {"question_id": 5000, "multiple_choice_answer": "red"},
            {"question_id": 5001, "multiple_choice_answer": "2"},
        ]
    }
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    vqa_to_manifest(q_path, a_path, tmp_path, out)
    assert _read_rows(out)[0]["questions"] == [
        {"question": "Is it round?", "answer": "yes", "question_id": 3000}
    ]
    assert load_manifest(out, check_files="none").samples[0].questions[0].human_answers == ()


def test_vqa_question_without_annotation(tmp_path: Path) -> None:
    questions, annotations = _vqa_files()
    del annotations["annotations"][2]  # drops 5001
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    with pytest.raises(ConversionError) as info:
        vqa_to_manifest(q_path, a_path, tmp_path, out)
    assert str(info.value) == (
        f"{q_path}: questions[2].question_id: 5001 has no annotation in {a_path}"
    )
    assert not out.exists()


def test_vqa_skip_leaves_out_questions_without_annotation(tmp_path: Path) -> None:
    questions, annotations = _vqa_files()
    del annotations["annotations"][0]  # drops 3000: image 3 has no question left
    del annotations["annotations"][1]  # drops 5001
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"

    result = vqa_to_manifest(q_path, a_path, tmp_path, out, on_error="skip")

    assert result.rows == 1
    assert result.skipped == [
        f"{q_path}: questions[1].question_id: 3000 has no annotation in {a_path}",
        f"{q_path}: questions[2].question_id: 5001 has no annotation in {a_path}",
    ]
    (row,) = _read_rows(out)
    assert row["id"] == "vqa-5"
    assert [q["question_id"] for q in row["questions"]] == [5000]


def test_vqa_skip_bad_annotation_lists_it_once(tmp_path: Path) -> None:
    questions, annotations = _vqa_files()
    annotations["annotations"][2]["answers"][4]["answer"] = 4
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    result = vqa_to_manifest(q_path, a_path, tmp_path, out, on_error="skip")
    assert result.skipped == [f"{a_path}: annotations[2].answers[4].answer: wrong type int (4)"]
    assert [len(row["questions"]) for row in _read_rows(out)] == [1, 1]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda a: a["annotations"][1]["answers"][2].pop("answer"),
            "annotations[1].answers[2].answer: missing required field",
        ),
        (
            lambda a: a["annotations"][1]["answers"][2].update(answer=["red"]),
            "annotations[1].answers[2].answer: wrong type list",
        ),
        (
            lambda a: a["annotations"][2]["answers"].__setitem__(7, "two"),
            "annotations[2].answers[7]: expected an object, got str",
        ),
        (
            lambda a: a["annotations"][0].update(answers={"answer": "yes"}),
            "annotations[0].answers: wrong type dict",
        ),
        (
            lambda a: a["annotations"][0]["answers"][0].update(answer_id="1"),
            "annotations[0].answers[0].answer_id: wrong type str",
        ),
        (
            lambda a: a["annotations"][0]["answers"][0].update(answer_confidence=1),
            "annotations[0].answers[0].answer_confidence: wrong type int",
        ),
        (
            lambda a: a["annotations"][1].pop("multiple_choice_answer"),
            "annotations[1].multiple_choice_answer: missing",
        ),
        (
            lambda a: a["annotations"][1].update(question_type=3),
            "annotations[1].question_type: wrong type int",
        ),
        (
            lambda a: a["annotations"][1].update(answer_type=None),
            "annotations[1].answer_type: wrong type NoneType",
        ),
        (lambda a: a.update(data_subtype=2014), ".data_subtype: wrong type int"),
    ],
)
def test_vqa_bad_annotations_name_the_json_path(tmp_path: Path, mutate, fragment: str) -> None:
    questions, annotations = _vqa_files()
    mutate(annotations)
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    with pytest.raises(ConversionError) as info:
        vqa_to_manifest(q_path, a_path, tmp_path, out)
    assert str(info.value).startswith(str(a_path))
    assert fragment in str(info.value)
    assert not out.exists()


def test_vqa_extra_answer_keys_are_not_copied(tmp_path: Path) -> None:
    questions, annotations = _vqa_files()
    annotations["annotations"][0]["answers"][0]["worker"] = "w1"
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    vqa_to_manifest(q_path, a_path, tmp_path, out)
    first = _read_rows(out)[0]["questions"][0]["answers"][0]
    assert first == {"answer": "yes", "answer_confidence": "yes", "answer_id": 1}
    load_manifest(out, check_files="none")


# ---------------------------------------------------------------------------------------------
# Karpathy splits


def _sentence(raw: str, imgid: int, sentid: int) -> dict[str, Any]:
    tokens = raw.lower().strip(" .").split()
    return {"tokens": tokens, "raw": raw, "imgid": imgid, "sentid": sentid}


def _karpathy_image(
    imgid: int, split: str, filename: str, cocoid: int | None = None, filepath: str | None = None
) -> dict[str, Any]:
    sentids = [imgid * 5 + k for k in range(5)]
    image: dict[str, Any] = {
        "sentids": sentids,
        "imgid": imgid,
        "sentences": [
            _sentence(f" caption {k} of image {imgid}. ", imgid, s) for k, s in enumerate(sentids)
        ],
        "split": split,
        "filename": filename,
    }
    if filepath is not None:
        image["filepath"] = filepath
    if cocoid is not None:
        image["cocoid"] = cocoid
    return image


KARPATHY_COCO = {
    "images": [
        _karpathy_image(0, "test", "COCO_val2014_000000391895.jpg", 391895, "val2014"),
        _karpathy_image(1, "restval", "COCO_val2014_000000522418.jpg", 522418, "val2014"),
        _karpathy_image(2, "train", "COCO_train2014_000000318556.jpg", 318556, "train2014"),
        _karpathy_image(3, "val", "COCO_val2014_000000184613.jpg", 184613, "val2014"),
        _karpathy_image(4, "test", "COCO_val2014_000000060623.jpg", 60623, "val2014"),
    ],
    "dataset": "coco",
}
KARPATHY_FLICKR = {
    "images": [
        _karpathy_image(0, "train", "1000092795.jpg"),
        _karpathy_image(1, "test", "10002456.jpg"),
        _karpathy_image(2, "val", "1000268201.jpg"),
        _karpathy_image(3, "test", "1000344755.jpg"),
    ],
    "dataset": "flickr30k",
}


def test_karpathy_coco_test_split(tmp_path: Path, make_png) -> None:
    root = tmp_path / "coco"
    make_png(root / "val2014" / "COCO_val2014_000000391895.jpg")
    make_png(root / "val2014" / "COCO_val2014_000000060623.jpg")
    source = _write_json(tmp_path / "dataset_coco.json", KARPATHY_COCO)
    out = tmp_path / "out" / "coco_test.jsonl"

    result = karpathy_to_manifest(source, root, out)

    assert result == ConversionResult(rows=2, skipped=[])
    rows = _read_rows(out)
    assert rows[0] == {
        "id": "karpathy-coco-0",
        "split": "test",
        "image": "../coco/val2014/COCO_val2014_000000391895.jpg",
        "text": "caption 0 of image 0.",
        "captions": [f"caption {k} of image 0." for k in range(5)],
        "meta": {
            "dataset": "coco",
            "imgid": 0,
            "sentids": [0, 1, 2, 3, 4],
            "cocoid": 391895,
            "karpathy_split": "test",
        },
    }
    assert [row["id"] for row in rows] == ["karpathy-coco-0", "karpathy-coco-4"]
    manifest = load_manifest(out)
    assert [len(sample.captions) for sample in manifest.samples] == [5, 5]
    assert {sample.split for sample in manifest.samples} == {"test"}


def test_karpathy_split_mapping(tmp_path: Path) -> None:
    source = _write_json(tmp_path / "dataset_coco.json", KARPATHY_COCO)
    out = tmp_path / "m.jsonl"
    result = karpathy_to_manifest(source, tmp_path, out, splits=("train", "restval", "val", "test"))
    assert result.rows == 5
    rows = _read_rows(out)
    assert [(row["split"], row["meta"]["karpathy_split"]) for row in rows] == [
        ("test", "test"),
        ("train", "restval"),
        ("train", "train"),
        ("val", "val"),
        ("test", "test"),
    ]
    assert rows[2]["image"] == "train2014/COCO_train2014_000000318556.jpg"
    karpathy_to_manifest(source, tmp_path, out, splits=["restval"])
    assert [row["id"] for row in _read_rows(out)] == ["karpathy-coco-1"]


def test_karpathy_flickr30k_has_no_filepath(tmp_path: Path, make_png) -> None:
    images = tmp_path / "flickr30k-images"
    make_png(images / "10002456.jpg")
    make_png(images / "1000344755.jpg")
    source = _write_json(tmp_path / "dataset_flickr30k.json", KARPATHY_FLICKR)
    out = tmp_path / "flickr_test.jsonl"

    assert karpathy_to_manifest(source, images, out, splits="test").rows == 2

    rows = _read_rows(out)
    assert [row["image"] for row in rows] == [
        "flickr30k-images/10002456.jpg",
        "flickr30k-images/1000344755.jpg",
    ]
    assert rows[0]["id"] == "karpathy-flickr30k-1"
    assert rows[0]["meta"] == {
        "dataset": "flickr30k",
        "imgid": 1,
        "sentids": [5, 6, 7, 8, 9],
        "karpathy_split": "test",
    }
    assert load_manifest(out).samples[1].text == "caption 0 of image 3."
    karpathy_to_manifest(source, images, out, splits=("val",))
    assert [row["split"] for row in _read_rows(out)] == ["val"]


@pytest.mark.parametrize("splits", [("training",), ("test", "dev"), ()])
def test_karpathy_unknown_split_argument(tmp_path: Path, splits: tuple[str, ...]) -> None:
    source = _write_json(tmp_path / "d.json", KARPATHY_FLICKR)
    with pytest.raises(ValueError, match="Karpathy split") as info:
        karpathy_to_manifest(source, tmp_path, tmp_path / "m.jsonl", splits=splits)
    assert not isinstance(info.value, ConversionError)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["images"][1].pop("filename"), "images[1].filename: missing"),
        (lambda d: d["images"][1].update(split="dev"), "images[1].split: unknown Karpathy split"),
        (lambda d: d["images"][3].update(sentences=[]), "images[3].sentences: empty list"),
        (
            lambda d: d["images"][3]["sentences"][2].update(raw="  "),
            "images[3].sentences[2].raw: empty caption",
        ),
        (
            lambda d: d["images"][3]["sentences"][2].pop("raw"),
            "images[3].sentences[2].raw: missing",
        ),
        (lambda d: d["images"][1].update(imgid="1"), "images[1].imgid: wrong type str"),
        (lambda d: d["images"][3].update(imgid=1), "images[3].imgid: duplicate imgid 1"),
        (lambda d: d["images"][1].update(sentids=[1, "2"]), "images[1].sentids[1]: wrong type"),
        (lambda d: d["images"][1].update(filepath=3), "images[1].filepath: wrong type int"),
        (lambda d: d.update(images=None), ".images: wrong type NoneType"),
    ],
)
def test_karpathy_errors_name_the_json_path(tmp_path: Path, mutate, fragment: str) -> None:
    data = _copy(KARPATHY_FLICKR)
    mutate(data)
    source = _write_json(tmp_path / "dataset_flickr30k.json", data)
    out = tmp_path / "m.jsonl"
    with pytest.raises(ConversionError) as info:
        karpathy_to_manifest(source, tmp_path, out)
    assert str(info.value).startswith(str(source))
    assert fragment in str(info.value)
    assert not out.exists()


def test_karpathy_other_splits_are_not_validated(tmp_path: Path) -> None:
    data = _copy(KARPATHY_FLICKR)
    data["images"][0]["sentences"] = []  # a train image
    source = _write_json(tmp_path / "d.json", data)
    assert karpathy_to_manifest(source, tmp_path, tmp_path / "m.jsonl").rows == 2


def test_karpathy_skip(tmp_path: Path) -> None:
    data = _copy(KARPATHY_FLICKR)
    data["images"][1]["sentences"][0]["raw"] = ""
    source = _write_json(tmp_path / "d.json", data)
    out = tmp_path / "m.jsonl"
    result = karpathy_to_manifest(source, tmp_path, out, on_error="skip")
    assert result.rows == 1
    assert result.skipped == [f"{source}: images[1].sentences[0].raw: empty caption"]
    assert [row["id"] for row in _read_rows(out)] == ["karpathy-flickr30k-3"]


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
    assert audio_captions_csv_to_manifest(source, audio_dir, out, split="val").rows == 2
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
    assert audio_captions_csv_to_manifest(source, audio_dir, out, split="test").rows == 6
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


def test_csv_skip_leaves_out_empty_cells(tmp_path: Path) -> None:
    source = _write_csv(
        tmp_path / "c.csv",
        "file_name,caption_1,caption_2\na.wav,one,two\nb.wav,three,  \n ,four,five\n",
    )
    out = tmp_path / "m.jsonl"
    result = audio_captions_csv_to_manifest(source, tmp_path, out, on_error="skip")
    assert result == ConversionResult(
        rows=3,
        skipped=[
            f"{source}:3: column 'caption_2': empty caption",
            f"{source}:4: column 'file_name': empty",
        ],
    )
    assert [row["text"] for row in _read_rows(out)] == ["one", "two", "three"]


def test_csv_header_error_raises_even_when_skipping(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "c.csv", "name,caption\na,b\n")
    with pytest.raises(ConversionError, match="header needs an audio column"):
        audio_captions_csv_to_manifest(source, tmp_path, tmp_path / "m.jsonl", on_error="skip")


# ---------------------------------------------------------------------------------------------
# Split and on_error validation


def _every_converter(tmp_path: Path, out: Path, **kwargs: Any) -> list:
    coco = _write_json(tmp_path / "c.json", COCO)
    q_path, a_path = _write_vqa(tmp_path, *_vqa_files())
    karpathy = _write_json(tmp_path / "k.json", KARPATHY_COCO)
    csv_path = _write_csv(tmp_path / "c.csv", "file_name,caption\na.wav,x\n")
    calls = [
        lambda: coco_captions_to_manifest(coco, tmp_path, out, **kwargs),
        lambda: vqa_to_manifest(q_path, a_path, tmp_path, out, **kwargs),
        lambda: audio_captions_csv_to_manifest(csv_path, tmp_path, out, **kwargs),
    ]
    if "split" not in kwargs:
        calls.append(lambda: karpathy_to_manifest(karpathy, tmp_path, out, **kwargs))
    return calls


def test_unknown_split_is_rejected_by_every_converter(tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    for call in _every_converter(tmp_path, out, split="training"):
        with pytest.raises(ValueError, match="unknown split 'training'") as info:
            call()
        assert not isinstance(info.value, ConversionError)
    assert not out.exists()


def test_unknown_on_error_is_rejected_by_every_converter(tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    calls = _every_converter(tmp_path, out, on_error="ignore")
    assert len(calls) == 4
    for call in calls:
        with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'") as info:
            call()
        assert not isinstance(info.value, ConversionError)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Nothing is lost quietly: every record read is written or reported


def test_vqa_duplicate_question_ids_are_reported_not_overwritten(tmp_path: Path) -> None:
    questions, annotations = _vqa_files()
    duplicate = _copy(annotations["annotations"][1])
    duplicate["multiple_choice_answer"] = "blue"
    annotations["annotations"].append(duplicate)
    questions["questions"].append(_copy(questions["questions"][0]))
    q_path, a_path = _write_vqa(tmp_path, questions, annotations)
    out = tmp_path / "m.jsonl"
    with pytest.raises(
        ConversionError,
        match=r"annotations\[3\]\.question_id: duplicate question_id 5000 \(also annotations\[1\]\)",
    ):
        vqa_to_manifest(q_path, a_path, tmp_path, out)
    result = vqa_to_manifest(q_path, a_path, tmp_path, out, on_error="skip")
    assert len(result.skipped) == 2 and "questions[3].question_id: duplicate" in result.skipped[1]
    answers = {q["question_id"]: q["answer"] for row in _read_rows(out) for q in row["questions"]}
    assert answers[5000] == "red"  # the first annotation stands; the second is reported
    assert len(answers) == 3


def test_coco_duplicate_annotation_ids_are_reported(tmp_path: Path) -> None:
    data = _copy(COCO)
    data["annotations"].append({"id": 2, "image_id": 10, "caption": "a second id 2"})
    source = _write_json(tmp_path / "captions.json", data)
    out = tmp_path / "m.jsonl"
    with pytest.raises(
        ConversionError,
        match=r"annotations\[3\]\.id: duplicate annotation id 2 \(also annotations\[1\]\)",
    ):
        coco_captions_to_manifest(source, tmp_path, out)
    result = coco_captions_to_manifest(source, tmp_path, out, on_error="skip")
    assert result.rows == 2 and len(result.skipped) == 1
    assert all(
        len(set(r["meta"]["caption_ids"])) == len(r["meta"]["caption_ids"]) for r in _read_rows(out)
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            'audio,caption\na.wav,"hello\nb.wav,world\nc.wav,again\n',
            r"captions\.csv:1: not valid CSV \(an unclosed quote\?\)",
        ),
        (
            "audio,caption\na.wav," + "x" * 200_000 + "\n",
            r"captions\.csv:\d+: not valid CSV: field larger than field limit",
        ),
    ],
)
def test_audio_csv_that_cannot_be_parsed_fails_whole_naming_the_line(
    tmp_path: Path, text: str, fragment: str
) -> None:
    source = tmp_path / "captions.csv"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "m.jsonl"
    for on_error in ("raise", "skip"):
        with pytest.raises(ConversionError, match=fragment):
            audio_captions_csv_to_manifest(source, tmp_path, out, on_error=on_error)
    assert not out.exists()  # nothing half-written


def test_audio_csv_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "captions.csv"
    source.write_bytes(b"audio,caption\na.wav,fine\nb.wav,caf\xe9\n")
    with pytest.raises(ConversionError, match=r"captions\.csv:\d+: not UTF-8 text"):
        audio_captions_csv_to_manifest(source, tmp_path, tmp_path / "m.jsonl")
