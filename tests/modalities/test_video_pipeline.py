"""Video end to end on a tiny world with clips: train a tiny video recipe, then reach video
through every path a user has — the harness (retrieval in every direction present, VQA per
family including motion, the missing-modality table, robustness curves of its corruptions),
``Model.ask(video=...)``, ``embed_media`` and the CLI's ``ask --video`` / ``embed --video``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_VIDEO_TOWER
from trimodal import Model
from trimodal.cli.main import main
from trimodal.config import load_config
from trimodal.eval.basic import vqa_accuracy
from trimodal.eval.harness import evaluate, load_inputs
from trimodal.eval.robustness import RobustnessSettings
from trimodal.train.loop import train
from trimodal.world.generate import WorldConfig, build_world

ROOT = Path(__file__).resolve().parents[2]
VIDEO = [
    *TINY_VIDEO_TOWER,
    "train.align.pairs=[image-text, video-text, audio-text]",
    "train.multitask.question_pool=true",
]


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(world, run): 40 scenes with 4-frame clips, the tiny recipe with a video tower."""
    world = tmp_path_factory.mktemp("video_world")
    build_world(world, WorldConfig(scenes=40, seed=5, video_frames=4), workers=2)
    run = tmp_path_factory.mktemp("video_run") / "run"
    train(load_config(ROOT / "configs" / "tiny.yaml", VIDEO), world, run, progress=False)
    return world, run


def test_the_harness_reaches_video_through_the_registry(video_run: tuple[Path, Path]) -> None:
    world, run = video_run
    model = Model.from_pretrained(run)
    assert "video" in model.network.encoders
    levels = RobustnessSettings(
        image_noise_sigma=[0.1],
        image_blur_sigma=[1.0],
        audio_snr_db=[10.0],
        typo_rate=[0.1],
        fgsm_epsilon=[1 / 255],
        media_levels=[0.0, 0.4],
    )
    metrics = evaluate(
        model,
        world / "manifest.jsonl",
        split="train",
        examples=0,
        robustness_levels=levels,
        robustness_scenes=12,
    )
    split = metrics["splits"]["train"]
    for direction in ("text->video", "video->text", "audio->video", "video->image"):
        assert split["retrieval"][direction]["queries"] > 0
    motion_families = {f"typed/{f}" for f in ("motion", "mover", "moves")}
    assert motion_families & set(split["vqa"]) and "spoken" in split["vqa"]
    removed = split["missing_modality"]["video_removed"]
    assert "typed" in removed and any(key.startswith("typed/") for key in removed)
    curves = metrics["robustness"]["curves"]
    assert {"video_gaussian_noise", "video_frame_drop"} <= set(curves)
    clean = metrics["robustness"]["clean"]
    # level 0 of a corruption is the clean input: the same figures
    noise = curves["video_gaussian_noise"]
    for metric in ("vqa_typed", "text->video R@1"):
        assert noise[metric][0] == pytest.approx(clean[metric])


def test_removing_the_video_is_answering_from_the_image_alone(
    video_run: tuple[Path, Path],
) -> None:
    """``remove="video"`` equals a naive loop that fuses only the image and the question."""
    world, run = video_run
    model = Model.from_pretrained(run)
    inputs = load_inputs(model, world / "manifest.jsonl")
    network, tensors = model.network, inputs.tensors
    rows = tensors.rows_in("train")[:10]
    hits = total = 0
    with torch.no_grad():
        for row in rows.tolist():
            image = network.image_context(
                network.encode("image", tensors.images[row : row + 1].float() / 255 * 4 - 2)
            )
            for q in range(tensors.question_ids.shape[1]):
                mask = tensors.question_mask[row, q]
                if not mask.any():
                    continue
                ids = tensors.question_ids[row, q][mask].unsqueeze(0)
                text = network.encode_question(ids, torch.ones_like(ids, dtype=torch.bool))
                guess = network.answer_logits({"image": image, "text": text.sequence()}).argmax()
                hits += int(guess == tensors.answers[row, q])
                total += 1
        scores = vqa_accuracy(network, tensors, rows, remove="video")
    assert scores["typed"]["count"] == total
    assert scores["typed"]["accuracy"] == pytest.approx(hits / total)


def test_ask_and_embed_take_a_video(
    video_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    world, run = video_run
    row = json.loads((world / "manifest.jsonl").read_text().splitlines()[0])
    clip, image = world / row["video"], world / row["image"]
    model = Model.from_pretrained(run)
    answers = model.ask(video=clip, text="does the star move?", top=3)
    assert len(answers) == 3 and sum(p for _, p in answers) <= 1.0 + 1e-6
    both = model.ask(image, text="does the star move?", video=clip)
    assert both[0][0] in model.network.vocabulary.answers
    embeddings = model.embed_media("video", [clip, clip])
    assert embeddings.shape == (2, model.network.config.model.embed_dim)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(embeddings[0], embeddings[1])

    assert (
        main(["ask", "--checkpoint", str(run), "--video", str(clip), "--text", "does it move?"])
        == 0
    )
    assert main(["embed", "--checkpoint", str(run), "--video", str(clip)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(json.loads(lines[-1])["embedding"]) == model.network.config.model.embed_dim


def test_bad_video_inputs_are_clear_errors(
    video_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = video_run
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    model = Model.from_pretrained(run)
    with pytest.raises(ValueError, match="cannot decode video"):
        model.ask(video=junk, text="does the star move?")
    with pytest.raises(ValueError, match="needs something to ask about"):
        model.ask(text="does the star move?")
    assert main(["ask", "--checkpoint", str(run), "--text", "what?"]) != 0
    assert "ask needs --image or a file to ask about (--video)" in capsys.readouterr().err


def test_a_model_without_a_video_tower_says_so(tiny_run: Path, tmp_path: Path) -> None:
    model = Model.from_pretrained(tiny_run)
    with pytest.raises(ValueError, match="this checkpoint has no video encoder"):
        model.embed_media("video", [tmp_path / "clip.mp4"])


def test_the_server_embeds_a_video_as_the_model_does(video_run: tuple[Path, Path]) -> None:
    import base64

    import httpx
    import numpy as np

    from tests.serve.conftest import LiveServer
    from trimodal.serve.app import create_app
    from trimodal.serve.engine import Engine

    world, run = video_run
    row = json.loads((world / "manifest.jsonl").read_text().splitlines()[0])
    clip = world / row["video"]
    model = Model.from_pretrained(run)
    part = {
        "type": "input_video",
        "input_video": {"data": base64.b64encode(clip.read_bytes()).decode(), "format": "mp4"},
    }
    with LiveServer(create_app(Engine(model, "video"))) as server:
        body = {"model": "video", "input": [part, "a red star"], "encoding_format": "float"}
        reply = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        got = np.array([d["embedding"] for d in reply.json()["data"]])
        expected = torch.cat(
            [model.embed_media("video", [clip]), model.embed_texts(["a red star"])]
        )
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
        junk = {
            **part,
            "input_video": {"data": base64.b64encode(b"not a video").decode(), "format": "mp4"},
        }
        refused = httpx.post(
            f"{server.url}/v1/embeddings", json={"model": "video", "input": [junk]}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "input[0].input_video.data"
        assert (
            "upload" in refused.json()["error"]["message"]
            or "video" in refused.json()["error"]["message"]
        )
