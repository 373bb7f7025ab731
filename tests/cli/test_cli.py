"""The CLI verbs run in-process through ``main(argv)``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from trimodal.cli.main import main
from trimodal.data.tokenizer import TextTokenizer


def test_world_builds_prints_summary_and_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w"
    status = main(
        [
            "world",
            "--out",
            str(out),
            "--scenes",
            "5",
            "--seed",
            "2",
            "--quiet",
            "--preview",
            str(tmp_path / "p.png"),
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "scenes per split" in printed and "balance" in printed
    assert (tmp_path / "p.png").stat().st_size > 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 5
    assert main(["world", "--out", str(out), "--scenes", "5", "--seed", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cached"] is True and summary["config"]["scenes"] == 5


def test_bad_world_argument_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["world", "--out", str(tmp_path), "--scenes", "0"]) == 2
    assert "--scenes must be at least 1" in capsys.readouterr().err


def test_varied_parts_vary_only_what_is_named(tmp_path: Path) -> None:
    from trimodal.cli.world import add_world_arguments, world_config
    from trimodal.world.generate import VARIED_RENDER, VARIED_SPEECH, WorldConfig

    parser = argparse.ArgumentParser()
    add_world_arguments(parser)
    plain = WorldConfig()
    drawing = world_config(parser.parse_args(["--varied", "drawing"]))
    assert drawing.render == VARIED_RENDER
    assert (drawing.speech, drawing.phrasing) == (plain.speech, plain.phrasing)
    everything = world_config(parser.parse_args(["--varied"]))
    assert (everything.render, everything.speech, everything.phrasing) == (
        VARIED_RENDER,
        VARIED_SPEECH,
        "varied",
    )
    assert world_config(parser.parse_args([])) == plain
    with pytest.raises(ValueError, match="--varied: cannot vary 'sound'"):
        world_config(parser.parse_args(["--varied", "speech,sound"]))


def test_manifest_verb_reports_errors_and_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "a", "split": "train", "text": "hi"}\n{"id": "b", "split": "nope", "text": "x"}\n'
    )
    assert main(["manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:2: field 'split'" in err
    assert main(["manifest", str(manifest), "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert "1 valid samples" in captured.out and "skipped 1 bad row" in captured.err


def test_convert_and_tokenizer_verbs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captions = tmp_path / "captions.json"
    captions.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg"}],
                "annotations": [
                    {"id": 5, "image_id": 1, "caption": "a red circle"},
                    {"id": 6, "image_id": 1, "caption": "a round red thing"},
                ],
            }
        )
    )
    out = tmp_path / "coco.jsonl"
    assert (
        main(
            [
                "convert",
                "coco",
                "--captions",
                str(captions),
                "--images",
                str(tmp_path),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "wrote 1 rows" in capsys.readouterr().out  # one row per image, both captions
    assert json.loads(out.read_text())["captions"] == ["a red circle", "a round red thing"]
    tokenizer_path = tmp_path / "tokenizer.json"
    assert (
        main(
            [
                "tokenizer",
                "--manifest",
                str(out),
                "--out",
                str(tokenizer_path),
                "--vocab-size",
                "300",
            ]
        )
        == 0
    )
    tokenizer = TextTokenizer.load(tokenizer_path)
    assert tokenizer.decode(tokenizer.encode("a red circle")) == "a red circle"
