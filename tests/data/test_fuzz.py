"""A seeded mutation fuzz, bounded to seconds, over the manifest parser, the converters and the
media decoders: every mutated input gives a clean error (or is read), never another exception;
and in ``--on-error skip`` mode every manifest line is either a sample or a reported row."""

from __future__ import annotations

import copy
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from PIL import Image

from trimodal.data.converters import (
    ConversionError,
    audio_captions_csv_to_manifest,
    coco_captions_to_manifest,
    vqa_to_manifest,
)
from trimodal.data.manifest import ManifestError, load_manifest
from trimodal.data.transforms import decode_audio, open_image

JUNK: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1e308,
    "",
    " ",
    "x" * 5000,
    "\u0000",
    "é",
    [],
    [None],
    {},
    {"a": []},
    "../" * 40,
    "/" + "a" * 300 + "/b.png",
    "a" * 5000 + ".png",
    [[[[]]]],
    3.5,
    "NaN",
]
RAW_LINES = [
    b"\xff\xfe not utf-8 \xc3\x28\n",
    b'{"id": "x", "split": "train", "text": "a", "label": ' + b"9" * 5000 + b"}\n",
    b'{"id": "deep", "split": "train", "meta": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}\n",
    b"[" * 100_000 + b"\n",
    b'{"id": "cut", "split": "tr',
    b"null\n",
    b"\n",
]


def _png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _wav(path: Path) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(1600, dtype=np.float32), 16_000, format="WAV")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _mutate(value: Any, rng: random.Random) -> Any:
    """``value`` with one randomly chosen node replaced by junk (or a key dropped)."""
    value = copy.deepcopy(value)
    nodes: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                nodes.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for index in range(len(node)):
                nodes.append((node, index))
                walk(node[index])

    walk(value)
    if not nodes:
        return rng.choice(JUNK)
    parent, key = rng.choice(nodes)
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[key]
    else:
        parent[key] = rng.choice(JUNK)
    return value


def test_mutated_manifests_give_clean_errors_and_lose_no_row(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _wav(tmp_path / "a.wav")
    rows = [
        {
            "id": "s1",
            "split": "train",
            "image": "a.png",
            "audio": "a.wav",
            "text": "a green square",
            "questions": [
                {
                    "question": "what color?",
                    "answer": "green",
                    "spoken_question": "a.wav",
                    "answers": [{"answer": "green", "answer_confidence": "yes", "answer_id": 1}],
                }
            ],
        },
        {"id": "s2", "split": "test", "image": "a.png", "captions": ["one", "two"], "label": 3},
        {"id": "s3", "split": "val", "text": "only text", "meta": {"k": [1, 2]}},
    ]
    rng = random.Random(0)
    manifest = tmp_path / "m.jsonl"

    def one() -> None:
        lines = [
            json.dumps(_mutate(row, rng) if rng.random() < 0.7 else row).encode() + b"\n"
            for row in rows
        ]
        if rng.random() < 0.4:
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(RAW_LINES))
        manifest.write_bytes(b"".join(lines))
        try:
            load_manifest(manifest)
        except ManifestError as error:
            assert all(issue.line >= 1 for issue in error.issues)
        skipped = load_manifest(manifest, on_error="skip")
        non_blank = [
            n for n, line in enumerate(b"".join(lines).split(b"\n"), start=1) if line.strip()
        ]
        kept = [sample.line for sample in skipped.samples]
        assert sorted(kept + skipped.skipped_lines) == non_blank  # every line kept or reported

    for _ in range(300):
        one()


COCO = {
    "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
    "annotations": [
        {"id": 10, "image_id": 1, "caption": "a cat"},
        {"id": 11, "image_id": 2, "caption": "a dog"},
        {"id": 12, "image_id": 1, "caption": "a small cat"},
    ],
}
VQA_QUESTIONS = {
    "data_subtype": "val2014",
    "questions": [{"question_id": 5, "image_id": 1, "question": "what?"}],
}
VQA_ANSWERS = {
    "data_subtype": "val2014",
    "annotations": [
        {
            "question_id": 5,
            "image_id": 1,
            "multiple_choice_answer": "cat",
            "answers": [{"answer": "cat", "answer_confidence": "yes", "answer_id": 1}],
        }
    ],
}


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_mutated_converter_inputs_give_clean_errors(tmp_path: Path, on_error: str) -> None:
    rng = random.Random(1 if on_error == "raise" else 2)
    out = tmp_path / "m.jsonl"

    def one() -> None:
        coco = tmp_path / "coco.json"
        coco.write_text(json.dumps(_mutate(COCO, rng)))
        questions, answers = tmp_path / "q.json", tmp_path / "a.json"
        questions.write_text(json.dumps(_mutate(VQA_QUESTIONS, rng)))
        answers.write_text(json.dumps(_mutate(VQA_ANSWERS, rng)))
        csv_file = tmp_path / "c.csv"
        cells = ["audio,caption_1,caption_2", "a.wav,one,two", "b,three,four"]
        cells[rng.randrange(1, 3)] = rng.choice(
            ['x,"open', "y," + "z" * 140_000, ",,", "only", 'q,"a""b",c']
        )
        csv_file.write_bytes("\n".join(cells).encode() + rng.choice([b"", b"\n", b"\xff\n"]))
        for convert in (
            lambda: coco_captions_to_manifest(coco, tmp_path, out, on_error=on_error),  # type: ignore[arg-type]
            lambda: vqa_to_manifest(questions, answers, tmp_path, out, on_error=on_error),  # type: ignore[arg-type]
            lambda: audio_captions_csv_to_manifest(csv_file, tmp_path, out, on_error=on_error),  # type: ignore[arg-type]
        ):
            try:
                convert()
            except ConversionError as error:
                assert str(error)

    for _ in range(150):
        one()


def test_mutated_media_bytes_give_clean_errors(tmp_path: Path) -> None:
    rng = random.Random(3)
    png, wav = _png(tmp_path / "a.png"), _wav(tmp_path / "a.wav")

    def corrupt(data: bytes) -> bytes:
        data = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:
            return bytes(data[: rng.randrange(len(data))])
        if kind == 1:
            for _ in range(rng.randrange(1, 20)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return bytes(data)
        if kind == 2:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        return bytes(data[:64]) + bytes(data[64:])[::-1]

    def one() -> None:
        for data, decode in (
            (png, lambda b: open_image(io.BytesIO(b), "fuzzed image")),
            (wav, lambda b: decode_audio(io.BytesIO(b), "fuzzed audio", 16_000, 40.0)),
        ):
            try:
                decode(corrupt(data))
            except ValueError as error:
                assert "fuzzed" in str(error)

    for _ in range(400):
        one()
