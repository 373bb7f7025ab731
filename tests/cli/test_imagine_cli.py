"""``trimodal imagine`` end to end on the tiny world and checkpoint (a few steps each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trimodal.cli.main import main
from trimodal.world.generate import WorldSummary


@pytest.fixture(scope="module")
def imagine_run(
    tiny_world: tuple[Path, WorldSummary], tiny_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("imagine") / "run"
    argv = [
        "imagine",
        "train",
        "--checkpoint",
        str(tiny_run),
        "--world",
        str(tiny_world[0]),
        "--out",
        str(out),
        "--tokenizer-steps",
        "4",
        "--prior-steps",
        "4",
        "--quiet",
    ]
    assert main(argv) == 0
    return out


def test_draw_is_seeded(imagine_run: Path, tmp_path: Path) -> None:
    outs = [tmp_path / f"{name}.png" for name in ("a", "b", "c")]
    caption = "a large red star to the left of a small blue circle"
    for out, seed in zip(outs, (3, 3, 4), strict=True):
        assert (
            main(
                [
                    "imagine",
                    "--checkpoint",
                    str(imagine_run),
                    "--text",
                    caption,
                    "--out",
                    str(out),
                    "--seed",
                    str(seed),
                    "--count",
                    "2",
                ]
            )
            == 0
        )
    pixels = [np.asarray(Image.open(out)) for out in outs]
    assert pixels[0].shape == (64, 128, 3)
    assert np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])


def test_eval_figures(
    imagine_run: Path, tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    out = tmp_path / "figures.json"
    assert (
        main(
            [
                "imagine",
                "eval",
                "--checkpoint",
                str(imagine_run),
                "--world",
                str(tiny_world[0]),
                "--scenes",
                "6",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    figures = json.loads(out.read_text())
    for part in ("generated", "reconstructed", "real"):
        assert 0.0 <= figures[part]["attribute_accuracy"] <= 1.0
    assert 0.0 <= figures["generated"]["r1_against_real"] <= 1.0
    assert figures["generated"]["frechet"] >= 0.0


def test_bad_requests(
    imagine_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["imagine", "--checkpoint", str(imagine_run), "--text", "x"]) == 2
    assert "--out" in capsys.readouterr().err
    assert (
        main(
            [
                "imagine",
                "--checkpoint",
                str(tmp_path),
                "--text",
                "x",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "not an imagine run" in capsys.readouterr().err


def test_the_diffusion_method_end_to_end(
    tiny_world: tuple[Path, WorldSummary], tiny_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "diffusion"
    world = str(tiny_world[0])
    train = ["imagine", "train", "--checkpoint", str(tiny_run), "--world", world]
    sizes = ["--set", "diffusion.model.dim=32", "--set", "diffusion.model.depth=1"]
    diffusion = ["--method", "diffusion", "--diffusion-steps", "3", *sizes]
    assert main([*train, "--out", str(run), *diffusion]) == 0
    info = json.loads((run / "imagine.json").read_text())
    assert info["settings"]["method"] == "diffusion" and (run / "denoiser.safetensors").is_file()
    assert info["settings"]["diffusion"]["model"]["dim"] == 32
    assert not (run / "prior.safetensors").exists()
    outs = [tmp_path / f"{name}.png" for name in ("a", "b")]
    for out in outs:
        draw = ["imagine", "--checkpoint", str(run), "--text", "a small red circle"]
        assert main([*draw, "--out", str(out), "--seed", "2", "--steps", "4"]) == 0
    first, second = (np.asarray(Image.open(out)) for out in outs)
    assert first.shape == (64, 64, 3) and np.array_equal(first, second)
    figures_path = tmp_path / "figures.json"
    evaluate = ["imagine", "eval", "--checkpoint", str(run), "--world", world, "--scenes", "4"]
    assert main([*evaluate, "--steps", "3", "--out", str(figures_path)]) == 0
    figures = json.loads(figures_path.read_text())
    assert figures["method"] == "diffusion" and figures["steps"] == 3 and figures["split"] == "test"
    assert "reconstructed" not in figures
    assert 0.0 <= figures["generated"]["attribute_accuracy"] <= 1.0


def test_a_setting_that_does_not_exist_is_named(
    tiny_world: tuple[Path, WorldSummary],
    tiny_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train = ["imagine", "train", "--checkpoint", str(tiny_run), "--world", str(tiny_world[0])]
    assert main([*train, "--out", str(tmp_path / "r"), "--set", "diffusion.model.size=3"]) == 2
    assert "diffusion.model" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_a_run_of_another_settings_layout_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "old"
    run.mkdir()
    info = {"checkpoint": str(tmp_path / "nowhere"), "settings": {"prior_steps": 10}}
    (run / "imagine.json").write_text(json.dumps(info))
    draw = ["imagine", "--checkpoint", str(run), "--text", "x", "--out", str(tmp_path / "x.png")]
    assert main(draw) == 2
    error = capsys.readouterr().err
    assert "imagine.json" in error and "prior_steps" in error and "train it again" in error
