"""``trimodal convert coco|vqa|karpathy|audio-captions`` run in-process through ``main``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trimodal.cli.main import main


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _answers(text: str) -> list[dict[str, Any]]:
    return [{"answer": text, "answer_confidence": "yes", "answer_id": k} for k in range(1, 11)]


def _vqa(tmp_path: Path, subtype: str | None = "train2014") -> tuple[Path, Path]:
    extra = {"data_type": "mscoco"} | ({} if subtype is None else {"data_subtype": subtype})
    questions = {
        **extra,
        "questions": [
            {"image_id": 7, "question": "Is it red?", "question_id": 70},
            {"image_id": 7, "question": "How many?", "question_id": 71},
            {"image_id": 9, "question": "What is it?", "question_id": 90},
        ],
    }
    annotations = {
        **extra,
        "annotations": [
            {
                "question_id": qid,
                "image_id": qid // 10,
                "multiple_choice_answer": answer,
                "answers": _answers(answer),
                "question_type": "what",
                "answer_type": "other",
            }
            for qid, answer in ((70, "yes"), (71, "2"), (90, "dog"))
        ],
    }
    return (
        _write_json(tmp_path / "q.json", questions),
        _write_json(tmp_path / "a.json", annotations),
    )


def test_convert_vqa_takes_image_names_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q_path, a_path = _vqa(tmp_path)
    out = tmp_path / "vqa.jsonl"
    argv = ["convert", "vqa", "--questions", str(q_path), "--annotations", str(a_path)]
    argv += ["--images", str(tmp_path / "train2014"), "--out", str(out), "--split", "val"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote 2 rows to {out}"
    assert captured.err == ""
    rows = _rows(out)
    assert rows[0]["image"] == "train2014/COCO_train2014_000000000007.jpg"
    assert rows[0]["questions"][0]["answers"] == _answers("yes")
    assert {row["split"] for row in rows} == {"val"}

    assert main([*argv, "--image-pattern", "{image_id}.png"]) == 0
    assert _rows(out)[1]["image"] == "train2014/9.png"


def test_convert_vqa_without_subtype_asks_for_a_pattern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q_path, a_path = _vqa(tmp_path, subtype=None)
    argv = ["convert", "vqa", "--questions", str(q_path), "--annotations", str(a_path)]
    argv += ["--images", str(tmp_path), "--out", str(tmp_path / "m.jsonl")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("trimodal convert: error: ")
    assert "--image-pattern" in err


def test_convert_vqa_on_error_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q_path, a_path = _vqa(tmp_path)
    annotations = json.loads(a_path.read_text())
    del annotations["annotations"][1]
    _write_json(a_path, annotations)
    out = tmp_path / "m.jsonl"
    argv = ["convert", "vqa", "--questions", str(q_path), "--annotations", str(a_path)]
    argv += ["--images", str(tmp_path), "--out", str(out)]

    assert main(argv) == 2
    assert f"questions[1].question_id: 71 has no annotation in {a_path}" in capsys.readouterr().err
    assert not out.exists()

    assert main([*argv, "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote 2 rows to {out}"
    assert captured.err.splitlines() == [
        "skipped 1 record(s):",
        f"  {q_path}: questions[1].question_id: 71 has no annotation in {a_path}",
    ]
    assert [len(row["questions"]) for row in _rows(out)] == [1, 1]


def test_convert_coco_groups_captions_and_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    captions = _write_json(
        tmp_path / "captions_val2017.json",
        {
            "images": [{"id": 397133, "file_name": "000000397133.jpg"}],
            "annotations": [
                {"id": 1, "image_id": 397133, "caption": "a man in a kitchen"},
                {"id": 2, "image_id": 99, "caption": "orphan"},
                {"id": 3, "image_id": 397133, "caption": "a man making pizza"},
            ],
        },
    )
    out = tmp_path / "coco.jsonl"
    argv = ["convert", "coco", "--captions", str(captions), "--images", str(tmp_path / "val2017")]
    argv += ["--out", str(out), "--split", "test"]
    assert main(argv) == 2
    assert "annotations[1].image_id: no image with id 99 in 'images'" in capsys.readouterr().err

    assert main([*argv, "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote 1 rows to {out}"
    assert captured.err.splitlines() == [
        "skipped 1 record(s):",
        f"  {captions}: annotations[1].image_id: no image with id 99 in 'images'",
    ]
    (row,) = _rows(out)
    assert row["image"] == "val2017/000000397133.jpg"
    assert row["captions"] == ["a man in a kitchen", "a man making pizza"]


def _karpathy_image(imgid: int, split: str, name: str, folder: str | None) -> dict[str, Any]:
    raw = [f"caption {k} of {imgid}" for k in range(5)]
    image: dict[str, Any] = {
        "imgid": imgid,
        "split": split,
        "filename": name,
        "sentids": list(range(imgid * 5, imgid * 5 + 5)),
        "sentences": [
            {"raw": r, "tokens": r.split(), "imgid": imgid, "sentid": imgid * 5 + k}
            for k, r in enumerate(raw)
        ],
    }
    if folder is not None:
        image["filepath"] = folder
        image["cocoid"] = 1000 + imgid
    return image


def test_convert_karpathy_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _write_json(
        tmp_path / "dataset_coco.json",
        {
            "dataset": "coco",
            "images": [
                _karpathy_image(0, "test", "COCO_val2014_000000001000.jpg", "val2014"),
                _karpathy_image(1, "restval", "COCO_val2014_000000001001.jpg", "val2014"),
                _karpathy_image(2, "train", "COCO_train2014_000000001002.jpg", "train2014"),
                _karpathy_image(3, "val", "COCO_val2014_000000001003.jpg", "val2014"),
            ],
        },
    )
    out = tmp_path / "k.jsonl"
    argv = ["convert", "karpathy", "--json", str(source), "--images", str(tmp_path / "coco")]
    argv += ["--out", str(out)]

    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"wrote 1 rows to {out}"
    (row,) = _rows(out)
    assert row["image"] == "coco/val2014/COCO_val2014_000000001000.jpg"
    assert row["split"] == "test" and len(row["captions"]) == 5

    assert main([*argv, "--splits", "train,restval", "--splits", "val"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 rows to {out}"
    assert [(r["split"], r["meta"]["karpathy_split"]) for r in _rows(out)] == [
        ("train", "restval"),
        ("train", "train"),
        ("val", "val"),
    ]

    assert main([*argv, "--splits", "dev"]) == 2
    assert "unknown Karpathy split" in capsys.readouterr().err


def test_convert_karpathy_on_error_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _karpathy_image(1, "test", "2.jpg", None)
    bad["sentences"][3]["raw"] = "  "
    source = _write_json(
        tmp_path / "dataset_flickr30k.json",
        {"dataset": "flickr30k", "images": [_karpathy_image(0, "test", "1.jpg", None), bad]},
    )
    out = tmp_path / "f.jsonl"
    argv = ["convert", "karpathy", "--json", str(source), "--images", str(tmp_path / "img")]
    argv += ["--out", str(out), "--on-error", "skip"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote 1 rows to {out}"
    assert captured.err.splitlines() == [
        "skipped 1 record(s):",
        f"  {source}: images[1].sentences[3].raw: empty caption",
    ]
    assert _rows(out)[0]["image"] == "img/1.jpg"


def test_convert_audio_captions_on_error_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.csv"
    source.write_text("file_name,caption_1,caption_2\na.wav,one,\n", encoding="utf-8")
    out = tmp_path / "m.jsonl"
    argv = ["convert", "audio-captions", "--csv", str(source), "--audio", str(tmp_path)]
    argv += ["--out", str(out)]
    assert main(argv) == 2
    capsys.readouterr()
    assert main([*argv, "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote 1 rows to {out}"
    assert captured.err.splitlines() == [
        "skipped 1 record(s):",
        f"  {source}:2: column 'caption_2': empty caption",
    ]
