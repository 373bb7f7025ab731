"""ask / embed / eval on a tiny trained run, in-process, and the Python Model API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trimodal import Model
from trimodal.cli.main import main
from trimodal.world.generate import WorldSummary


def test_ask_typed_and_spoken(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary], capsys: pytest.CaptureFixture[str]
) -> None:
    world = tiny_world[0]
    image = str(world / "images" / "000000.png")
    assert (
        main(
            [
                "ask",
                "--checkpoint",
                str(tiny_run),
                "--image",
                image,
                "--text",
                "what color is the star?",
                "--top",
                "3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    probabilities = [float(line.split("\t")[1]) for line in lines]
    assert len(lines) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert (
        main(
            [
                "ask",
                "--checkpoint",
                str(tiny_run),
                "--image",
                image,
                "--audio",
                str(world / "audio" / "000000_question.wav"),
            ]
        )
        == 0
    )
    answer, probability = capsys.readouterr().out.strip().split("\t")
    model = Model.from_pretrained(tiny_run)
    assert answer in model.network.vocabulary.answers and 0 < float(probability) <= 1


def test_embed_prints_and_saves_normalized_vectors(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(tiny_run),
                "--text",
                "a small red circle",
                "a large blue star",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == ["a small red circle", "a large blue star"]
    for row in rows:
        assert abs(sum(v * v for v in row["embedding"]) - 1.0) < 1e-4
    target = tmp_path / "e.safetensors"
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(tiny_run),
                "--text",
                "a small red circle",
                "--save",
                str(target),
            ]
        )
        == 0
    )
    saved = load_file(str(target))["embeddings"]
    model = Model.from_pretrained(tiny_run)
    assert torch.allclose(saved, model.embed_texts(["a small red circle"]), atol=1e-6)


def test_eval_writes_report_folder(
    tiny_run: Path,
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "report"
    args = ["eval", "--checkpoint", str(tiny_run), "--world", str(tiny_world[0])]
    args += ["--split", "train", "--out", str(out), "--robustness-scenes", "8", "--examples", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "VQA typed" in printed and f"report: {out / 'report.md'}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("report.md", "robustness.png", "examples.png"):
        assert (out / name).stat().st_size > 0
    train = metrics["splits"]["train"]
    retrieval = train["retrieval"]
    assert retrieval["gallery_size"] == tiny_world[1].scenes_per_split["train"]
    for direction in (
        "text->image",
        "image->text",
        "text->audio",
        "audio->text",
        "image->audio",
        "audio->image",
    ):
        assert 0.0 <= retrieval[direction]["R@1"] <= retrieval[direction]["R@5"] <= 1.0
    assert train["vqa"]["typed"]["count"] == 4 * retrieval["gallery_size"]
    assert train["vqa"]["spoken"]["count"] == retrieval["gallery_size"]
    assert set(metrics["splits"]) == {"train", "holdout"}
    assert metrics["robustness"]["scenes"] == 8
    assert len(metrics["examples"]) == 4  # 2 scenes x (typed, spoken)
    # one writer per report folder: a second eval into it while one runs is refused
    from trimodal.locks import FolderLock

    with FolderLock(out, "evaluation"):
        assert main(args) == 2
    assert "is being written by another trimodal process" in capsys.readouterr().err


def test_eval_json_and_bad_baseline(
    tiny_run: Path,
    tiny_world: tuple[Path, WorldSummary],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tiny_world[0] / "manifest.jsonl"
    args = ["eval", "--checkpoint", str(tiny_run), "--manifest", str(manifest)]
    args += ["--out", str(tmp_path / "r"), "--no-robustness", "--examples", "0", "--json"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["eval_split"], printed["vqa_rules"]) == ("test", "official")
    assert main([*args, "--vqa-rules", "2017"]) == 0
    assert json.loads(capsys.readouterr().out)["vqa_rules"] == "2017"
    assert main([*args, "--baseline", "nonsense"]) == 2
    assert "--baseline expects NAME=RUN" in capsys.readouterr().err
    assert main([*args, "--split", "nope"]) == 2
    assert "split 'nope' is empty" in capsys.readouterr().err


def test_bad_checkpoint_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "--checkpoint", str(tmp_path), "--image", "x.png", "--text", "q"]) == 2
    assert "not a trimodal checkpoint" in capsys.readouterr().err


def test_a_spoken_question_shows_what_the_transcriber_heard(
    tiny_run: Path,
    tiny_world: tuple[Path, WorldSummary],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from trimodal.data.dataset import pad_spectrograms
    from trimodal.data.transforms import load_audio
    from trimodal.models.trimodal import CTCTranscriber

    world = tiny_world[0]
    wav = world / "audio" / "000000_question.wav"
    model = Model.from_pretrained(tiny_run)
    with pytest.raises(ValueError, match="no transcriber"):
        model.transcribe_question(wav)
    torch.manual_seed(0)
    network = model.network
    m = network.config.model
    network.transcriber = CTCTranscriber(
        m.dim, 1, m.backbone_heads, m.mlp_ratio, model.tokenizer.vocab_size
    )
    heard = model.transcribe_question(wav)
    # By hand: best class per audio token, repeats merged, blanks dropped, then decoded.
    with torch.no_grad():
        features, mask = pad_spectrograms(
            [model.log_mel(load_audio(wav, model.log_mel.sample_rate))]
        )
        audio = network.encode("audio", features, mask)
        best = network.transcriber(audio.tokens, audio.mask)[0].argmax(-1).tolist()
    words, previous = [], None
    for index in best[: int(audio.mask.sum())]:
        if index != previous and index != network.transcriber.blank:
            words.append(index)
        previous = index
    assert heard == model.tokenizer.decode(words).strip()
    # The CLI says what it heard (on stderr, so stdout keeps one answer a line).
    network.config.model.transcriber_depth = 1
    network.save_pretrained(tmp_path / "with_transcriber", model.tokenizer)
    image = str(world / "images" / "000000.png")
    assert (
        main(
            [
                "ask",
                "--checkpoint",
                str(tmp_path / "with_transcriber"),
                "--image",
                image,
                "--audio",
                str(wav),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err.strip().endswith(f"heard: {heard}".strip())
    assert len(captured.out.strip().split("\t")) == 2


def test_ask_hears_a_spoken_question_with_whisper(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--whisper``: the transcript goes to stderr and is answered as the typed question."""
    pytest.importorskip("faster_whisper")
    from trimodal.towers.whisper import WhisperTower

    try:
        tower = WhisperTower.load("tiny.en")
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    world = tiny_world[0]
    image, audio = (
        str(world / "images" / "000000.png"),
        str(world / "audio" / "000000_question.wav"),
    )
    args = ["ask", "--checkpoint", str(tiny_run), "--image", image, "--audio", audio]
    assert main([*args, "--whisper", "tiny.en"]) == 0
    captured = capsys.readouterr()
    heard = captured.err.split("heard (whisper tiny.en): ", 1)[1].strip()
    assert heard == tower.transcribe(audio)
    answer, probability = captured.out.strip().split("\t")
    expected = Model.from_pretrained(tiny_run).ask(image, text=heard)[0]
    assert answer == expected[0] and float(probability) == pytest.approx(expected[1], abs=1e-3)
    no_audio = ["ask", "--checkpoint", str(tiny_run), "--image", image, "--text", "hi"]
    assert main([*no_audio, "--whisper", "tiny.en"]) == 2
    assert "--whisper hears a spoken question" in capsys.readouterr().err


def test_empty_huge_and_over_long_texts_are_never_read_silently(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary], capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(next((tiny_world[0] / "images").glob("*.png")))
    checkpoint = ["--checkpoint", str(tiny_run)]
    assert main(["ask", *checkpoint, "--image", image, "--text", "  "]) == 2
    assert "text 1 is empty" in capsys.readouterr().err
    assert main(["embed", *checkpoint, "--text", "a red circle", "x" * 10_001]) == 2
    assert "text 2 has 10001 characters; at most 10000" in capsys.readouterr().err
    model = Model.from_pretrained(tiny_run)
    longest = model.network.encoders["text"].max_length
    words = " ".join(["red circle"] * longest)
    with pytest.warns(UserWarning, match=f"only their first {longest} tokens are read"):
        model.embed_texts(["a blue square", words])
