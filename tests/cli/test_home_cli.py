"""``trimodal home`` end to end on a tiny world: build, train, eval, answer with valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trimodal.cli.main import main
from trimodal.home.actions import validate_outcome
from trimodal.home.world import load_home_world


def test_world_rows_and_files(home_run: tuple[Path, Path]) -> None:
    world, _ = home_run
    rows = load_home_world(world)
    assert [r["split"] for r in rows].count("test") == 24
    for row in rows:
        validate_outcome(row["outcome"])
        assert (world / row["image"]).is_file() and (world / row["audio"]).is_file()


def test_train_eval_and_answers(
    home_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    world, run = home_run
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert set(metrics) == {"typed", "typed_no_image", "spoken", "spoken_no_image"}
    assert (
        main(["home", "eval", "--checkpoint", str(run), "--world", str(world), "--device", "cpu"])
        == 0
    )
    printed = capsys.readouterr().out
    typed = next(line for line in printed.splitlines() if line.startswith("typed "))
    assert f"{metrics['typed']['exact_accuracy']:.3f}" in typed
    row = load_home_world(world)[0]
    for command in (["--text", "unlock the front door"], ["--audio", str(world / row["audio"])]):
        assert (
            main(
                [
                    "home",
                    "--checkpoint",
                    str(run),
                    "--image",
                    str(world / row["image"]),
                    *command,
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        validate_outcome(json.loads(capsys.readouterr().out))
    assert main(["home", "--checkpoint", str(run), "--no-image", "--text", "lights on"]) == 0
    validate_outcome(json.loads(capsys.readouterr().out))


def test_bad_requests_are_one_line(
    home_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world, run = home_run
    image = str(world / "images" / "00000.png")
    cases = [
        (["home", "--checkpoint", str(run), "--image", image], "as text or as audio"),
        (["home", "--checkpoint", str(run), "--text", "hi"], "--no-image"),
        (
            ["home", "--checkpoint", str(tmp_path), "--image", image, "--text", "hi"],
            "not a home run",
        ),
        (
            ["home", "--checkpoint", str(run), "--image", str(tmp_path / "x.png"), "--text", "hi"],
            "image file not found",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("allow: [fan:open]\n")
    assert (
        main(
            [
                "home",
                "train",
                "--world",
                str(world),
                "--out",
                str(tmp_path / "r"),
                "--config",
                str(bad),
            ]
        )
        == 2
    )
    assert "'fan:open' is not device:action" in capsys.readouterr().err
