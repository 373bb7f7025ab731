"""load_manifest: parsing, path resolution, and FILE:LINE: field errors for every bad row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trimodal.data.manifest import (
    Manifest,
    ManifestError,
    QuestionRecord,
    Sample,
    load_manifest,
)

GOOD_ROW: dict[str, Any] = {"id": "good", "split": "train", "text": "a red circle"}


@pytest.fixture
def media(tmp_path: Path, make_png, make_wav, make_garbage) -> Path:
    """A manifest folder holding good, corrupt and empty media files; returns the folder."""
    make_png(tmp_path / "images" / "ok.png")
    make_garbage(tmp_path / "images" / "garbage.png")
    make_wav(tmp_path / "audio" / "ok.wav")
    make_wav(tmp_path / "audio" / "question.wav", samples=800)
    make_garbage(tmp_path / "audio" / "garbage.wav")
    make_wav(tmp_path / "audio" / "empty.wav", data=[])
    make_garbage(tmp_path / "videos" / "garbage.mp4")
    return tmp_path


def _row(**fields: Any) -> dict[str, Any]:
    """A valid text-only row with ``fields`` merged in (a value of ``...`` removes the key)."""
    row = {"id": "bad", "split": "val", "text": "a blue square"}
    row.update(fields)
    return {key: value for key, value in row.items() if value is not ...}


def _raises(path: Path, **kwargs: Any) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kwargs)
    return info.value


# (bad line as written, field the error must name (None: row-level), fragment of the message)
ERROR_CASES: list[tuple[str, str | None, str]] = [
    ('{"id": "bad", "split": ', None, "invalid JSON"),
    ("[1, 2]", None, "expected a JSON object, got list"),
    ('"just a string"', None, "expected a JSON object, got str"),
    (json.dumps(_row(id=...)), "id", "missing required field"),
    (json.dumps(_row(split=...)), "split", "missing required field"),
    (json.dumps(_row(colour="red")), "colour", "unknown field"),
    (json.dumps(_row(text=5)), "text", "expected str, got int"),
    (json.dumps(_row(label=True)), "label", "expected str or int, got bool"),
    (json.dumps(_row(label=1.5)), "label", "expected str or int, got float"),
    (json.dumps(_row(id=7)), "id", "expected str, got int"),
    (json.dumps(_row(questions={"q": "a"})), "questions", "expected list, got dict"),
    (json.dumps(_row(scene=[1])), "scene", "expected dict, got list"),
    (json.dumps(_row(split="training")), "split", "unknown split 'training'"),
    (
        json.dumps(_row(text=..., questions=[{"question": "q?", "answer": "a"}])),
        None,
        "at least one of image, audio, text",
    ),
    (json.dumps(_row(image="images/missing.png")), "image", "file not found"),
    (json.dumps(_row(image="images/garbage.png")), "image", "cannot decode image"),
    (json.dumps(_row(audio="audio/missing.wav")), "audio", "file not found"),
    (json.dumps(_row(audio="audio/garbage.wav")), "audio", "cannot decode audio"),
    (json.dumps(_row(audio="audio/empty.wav")), "audio", "no samples"),
    (json.dumps(_row(video="videos/missing.mp4")), "video", "video file not found"),
    (json.dumps(_row(video="videos/garbage.mp4")), "video", "cannot decode video"),
    (json.dumps(_row(video=5)), "video", "expected str, got int"),
    (json.dumps(_row(questions=["what colour?"])), "questions[0]", "expected an object, got str"),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": "a"}, {"question": "q2?"}])),
        "questions[1].answer",
        "missing required field",
    ),
    (
        json.dumps(_row(questions=[{"answer": "a"}])),
        "questions[0].question",
        "missing required field",
    ),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": 3}])),
        "questions[0].answer",
        "expected str, got int",
    ),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": "a", "hint": "x"}])),
        "questions[0].hint",
        "unknown field",
    ),
    (
        json.dumps(
            _row(
                questions=[
                    {"question": "q?", "answer": "a", "spoken_question": "audio/garbage.wav"}
                ]
            )
        ),
        "questions[0].spoken_question",
        "cannot decode audio",
    ),
    (
        json.dumps(
            _row(questions=[{"question": "q?", "answer": "a", "spoken_question": "audio/nope.wav"}])
        ),
        "questions[0].spoken_question",
        "file not found",
    ),
    (json.dumps(_row(id="good")), "id", "duplicate id 'good' (first seen on line 1)"),
    (json.dumps(_row(captions="a red circle")), "captions", "expected list, got str"),
    (json.dumps(_row(captions=[])), "captions", "empty list"),
    (json.dumps(_row(captions=["ok", " "])), "captions[1]", "non-empty string"),
    (json.dumps(_row(captions=["ok", 3])), "captions[1]", "non-empty string"),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": "a", "answers": "a"}])),
        "questions[0].answers",
        "expected list, got str",
    ),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": "a", "answers": ["a"]}])),
        "questions[0].answers[0]",
        "expected an object, got str",
    ),
    (
        json.dumps(
            _row(
                questions=[{"question": "q?", "answer": "a", "answers": [{"answer": "a", "id": 1}]}]
            )
        ),
        "questions[0].answers[0].id",
        "unknown field",
    ),
    (
        json.dumps(
            _row(questions=[{"question": "q?", "answer": "a", "answers": [{"answer_id": 1}]}])
        ),
        "questions[0].answers[0].answer",
        "missing required field",
    ),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": "a", "answers": [{"answer": 2}]}])),
        "questions[0].answers[0].answer",
        "expected str, got int",
    ),
    (
        json.dumps(_row(questions=[{"question": "q?", "answer": "a", "question_id": 1.5}])),
        "questions[0].question_id",
        "expected int or str, got float",
    ),
]


@pytest.mark.parametrize(
    ("bad_line", "field", "fragment"),
    ERROR_CASES,
    ids=[f"{case[1]}:{case[2][:30]}" for case in ERROR_CASES],
)
def test_error_names_file_line_and_field(
    media: Path, write_jsonl, bad_line: str, field: str | None, fragment: str
) -> None:
    path = write_jsonl(media / "manifest.jsonl", [GOOD_ROW, bad_line])
    error = _raises(path)
    message = str(error)
    assert len(error.issues) == 1, message
    issue = error.issues[0]
    assert (issue.path, issue.line, issue.field) == (str(path), 2, field)
    assert fragment in issue.message
    # The exception text itself says where: FILE:LINE: field 'F': ...
    if field is None:
        assert f"{path}:2: {issue.message}" in message
    else:
        assert f"{path}:2: field '{field}': " in message
    assert fragment in message
    assert "1 problem(s) in manifest" in message


def test_null_row_is_reported(media: Path, write_jsonl) -> None:
    path = write_jsonl(media / "manifest.jsonl", [GOOD_ROW, "null"])
    error = _raises(path)
    assert [(issue.line, issue.field) for issue in error.issues] == [(2, None)]


def test_raise_lists_every_bad_row(media: Path, write_jsonl) -> None:
    rows = [
        GOOD_ROW,
        _row(id="b1", text=1),
        _row(id="b2"),
        _row(id="b3", split="nope", image="images/missing.png"),
    ]
    path = write_jsonl(media / "manifest.jsonl", rows)
    error = _raises(path)
    assert sorted((issue.line, issue.field) for issue in error.issues) == [
        (2, "text"),
        (4, "image"),
        (4, "split"),
    ]
    assert "3 problem(s) in manifest" in str(error)
    assert isinstance(error, ValueError)


def test_skip_keeps_good_rows_and_reports_skipped(media: Path, write_jsonl) -> None:
    rows = [
        GOOD_ROW,
        '{"broken": ',
        "",
        _row(id="second", image="images/ok.png"),
        _row(id="third", text=3, extra=True),
        _row(id="good"),  # duplicate of line 1
    ]
    path = write_jsonl(media / "manifest.jsonl", rows)
    manifest = load_manifest(path, on_error="skip")
    assert [sample.id for sample in manifest.samples] == ["good", "second"]
    assert [sample.line for sample in manifest.samples] == [1, 4]
    assert manifest.skipped_lines == [2, 5, 6]
    assert len(manifest.skipped) == 4  # line 5 has two problems
    report = manifest.skipped_report()
    first, *details = report.splitlines()
    assert first == f"skipped 3 bad row(s) of {path}:"
    assert len(details) == 4
    assert any(f"{path}:5: field 'text'" in line for line in details)
    assert any(f"{path}:5: field 'extra'" in line for line in details)
    assert any(f"{path}:6: field 'id'" in line for line in details)


def test_skip_with_no_problems_reports_nothing(media: Path, write_jsonl) -> None:
    path = write_jsonl(media / "manifest.jsonl", [GOOD_ROW])
    manifest = load_manifest(path, on_error="skip")
    assert manifest.skipped == []
    assert manifest.skipped_lines == []
    assert manifest.skipped_report() == ""


def test_check_files_exists_only_checks_presence(media: Path, write_jsonl) -> None:
    good = write_jsonl(
        media / "good.jsonl",
        [_row(id="a", image="images/garbage.png", audio="audio/garbage.wav")],
    )
    manifest = load_manifest(good, check_files="exists")
    assert manifest.samples[0].image == media / "images" / "garbage.png"
    assert manifest.samples[0].audio == media / "audio" / "garbage.wav"

    bad = write_jsonl(media / "bad.jsonl", [_row(id="a", image="images/missing.png")])
    error = _raises(bad, check_files="exists")
    assert [(issue.line, issue.field) for issue in error.issues] == [(1, "image")]
    assert "file not found" in error.issues[0].message


def test_check_files_none_trusts_paths(media: Path, write_jsonl) -> None:
    question = {"question": "q?", "answer": "a", "spoken_question": "audio/absent.wav"}
    path = write_jsonl(
        media / "manifest.jsonl",
        [_row(id="a", image="images/missing.png", audio="nowhere.wav", questions=[question])],
    )
    sample = load_manifest(path, check_files="none").samples[0]
    assert sample.image == media / "images" / "missing.png"
    assert sample.audio == media / "nowhere.wav"
    assert sample.questions[0].spoken_question == media / "audio" / "absent.wav"


def test_relative_paths_resolve_against_manifest_folder(
    tmp_path: Path, make_png, make_wav, write_jsonl, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "data" / "v1"
    make_png(nested / "images" / "a.png")
    make_wav(tmp_path / "data" / "shared" / "a.wav")
    absolute = make_png(tmp_path / "elsewhere" / "abs.png")
    path = write_jsonl(
        nested / "manifest.jsonl",
        [
            {"id": "a", "split": "train", "image": "images/a.png", "audio": "../shared/a.wav"},
            {"id": "b", "split": "test", "image": str(absolute)},
        ],
    )
    # Resolution must not depend on the working directory.
    monkeypatch.chdir(tmp_path / "elsewhere")
    manifest = load_manifest(path)
    assert manifest.root == nested
    first, second = manifest.samples
    assert first.image == nested / "images" / "a.png"
    assert first.audio is not None
    assert first.audio.resolve() == (tmp_path / "data" / "shared" / "a.wav").resolve()
    assert second.image == absolute


def test_blank_lines_are_ignored_but_counted(media: Path, write_jsonl) -> None:
    path = write_jsonl(media / "manifest.jsonl", ["", "   \t", GOOD_ROW, "", _row(id="x")])
    manifest = load_manifest(path)
    assert [(sample.id, sample.line) for sample in manifest.samples] == [("good", 3), ("x", 5)]


def test_error_line_numbers_count_blank_lines(media: Path, write_jsonl) -> None:
    path = write_jsonl(media / "manifest.jsonl", ["", GOOD_ROW, "", _row(text=[])])
    error = _raises(path)
    assert [(issue.line, issue.field) for issue in error.issues] == [(4, "text")]
    assert f"{path}:4: field 'text'" in str(error)


def test_good_multimodal_row(media: Path, write_jsonl) -> None:
    row = {
        "id": "scene-000001",
        "split": "holdout",
        "image": "images/ok.png",
        "audio": "audio/ok.wav",
        "text": "a small red circle",
        "label": 3,
        "scene": {"objects": [{"shape": "circle"}]},
        "meta": {"source": "test"},
        "questions": [
            {
                "question": "what color is the circle?",
                "answer": "red",
                "family": "color",
                "spoken_question": "audio/question.wav",
            },
            {"question": "how many circles?", "answer": "one"},
        ],
    }
    manifest = load_manifest(write_jsonl(media / "manifest.jsonl", [row]))
    assert isinstance(manifest, Manifest)
    assert manifest.skipped == []
    (sample,) = manifest.samples
    assert isinstance(sample, Sample)
    assert sample.id == "scene-000001"
    assert sample.split == "holdout"
    assert sample.line == 1
    assert sample.image == media / "images" / "ok.png"
    assert sample.audio == media / "audio" / "ok.wav"
    assert sample.text == "a small red circle"
    assert sample.label == 3
    assert sample.scene == {"objects": [{"shape": "circle"}]}
    assert sample.meta == {"source": "test"}
    assert sample.modalities == ("image", "audio", "text")
    assert sample.questions == (
        QuestionRecord(
            question="what color is the circle?",
            answer="red",
            family="color",
            spoken_question=media / "audio" / "question.wav",
        ),
        QuestionRecord(question="how many circles?", answer="one", family=None),
    )
    assert sample.questions[1].spoken_question is None


def test_optional_fields_default(media: Path, write_jsonl) -> None:
    manifest = load_manifest(
        write_jsonl(
            media / "manifest.jsonl", [{"id": "a", "split": "val", "audio": "audio/ok.wav"}]
        )
    )
    (sample,) = manifest.samples
    assert sample.modalities == ("audio",)
    assert (sample.image, sample.text, sample.label, sample.scene) == (None, None, None, None)
    assert sample.questions == ()
    assert sample.meta == {}


def test_official_vqa_fields_and_grouped_captions_load(media: Path, write_jsonl) -> None:
    humans = [
        {"answer": answer, "answer_confidence": "yes", "answer_id": i + 1}
        for i, answer in enumerate(["2"] * 6 + ["two"] * 2 + ["3"] * 2)
    ]
    question = {"question": "how many dogs?", "answer": "2", "family": "number"}
    question |= {"answers": humans, "question_id": 4587, "question_type": "how many"}
    row = {"id": "vqa-1", "split": "val", "image": "images/ok.png", "questions": [question]}
    row |= {"captions": ["two dogs on a couch", "a pair of dogs"], "text": "two dogs on a couch"}
    (sample,) = load_manifest(write_jsonl(media / "m.jsonl", [row])).samples
    assert sample.captions == ("two dogs on a couch", "a pair of dogs")
    (record,) = sample.questions
    assert record.human_answers == tuple(["2"] * 6 + ["two"] * 2 + ["3"] * 2)
    assert (record.question_id, record.question_type) == (4587, "how many")


def test_captions_alone_make_a_sample(media: Path, write_jsonl) -> None:
    row = {"id": "c", "split": "test", "captions": ["a cat"]}
    (sample,) = load_manifest(write_jsonl(media / "m.jsonl", [row])).samples
    assert sample.captions == ("a cat",)


def test_split_selects_by_name(media: Path, write_jsonl) -> None:
    rows = [
        _row(id=f"s{i}", split=split) for i, split in enumerate(["train", "val", "test", "train"])
    ]
    manifest = load_manifest(write_jsonl(media / "manifest.jsonl", rows))
    assert [s.id for s in manifest.split("train")] == ["s0", "s3"]
    assert [s.id for s in manifest.split("val", "test")] == ["s1", "s2"]
    assert manifest.split("holdout") == []


def test_missing_manifest_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_manifest(tmp_path / "absent.jsonl")


def test_bad_on_error_value(media: Path, write_jsonl) -> None:
    path = write_jsonl(media / "manifest.jsonl", [GOOD_ROW])
    with pytest.raises(ValueError, match="on_error"):
        load_manifest(path, on_error="ignore")  # type: ignore[arg-type]
