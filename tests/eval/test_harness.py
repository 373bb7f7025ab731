"""The harness's task metrics against naive per-item loops on the tiny trained model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from trimodal import Model
from trimodal.data.tensors import RaggedAudio, to_float_images
from trimodal.eval.basic import embed_rows, retrieval_metrics, vqa_accuracy
from trimodal.eval.harness import (
    EvaluationInputs,
    HarnessSettings,
    evaluate,
    evaluate_checkpoint,
    load_inputs,
    missing_modality,
)
from trimodal.eval.robustness import RobustnessSettings, robustness_curves
from trimodal.world.generate import WorldSummary


@pytest.fixture(scope="module")
def loaded(tiny_run: Path, tiny_world: tuple[Path, WorldSummary]) -> tuple[Model, EvaluationInputs]:
    model = Model.from_pretrained(tiny_run)
    return model, load_inputs(model, tiny_world[0] / "manifest.jsonl")


@torch.no_grad()
def naive_typed_accuracy(
    model: Model, inputs: EvaluationInputs, rows: list[int], remove: str | None
) -> float:
    network, tensors = model.network, inputs.tensors
    hits = total = 0
    for row in rows:
        image = network.image_context(
            network.encode("image", to_float_images(tensors.images[row : row + 1]))
        )
        for q in range(tensors.question_ids.shape[1]):
            mask = tensors.question_mask[row, q]
            if not mask.any():
                continue
            ids = tensors.question_ids[row, q][mask].unsqueeze(0)
            text = network.encode("text", ids, torch.ones_like(ids, dtype=torch.bool)).sequence()
            parts = {"image": image, "text": text}
            if remove == "image":
                del parts["image"]
            if remove == "question":
                del parts["text"]
            predicted = int(network.answer_logits(parts).argmax())
            hits += predicted == int(tensors.answers[row, q])
            total += 1
    return hits / total


@pytest.mark.parametrize("remove", [None, "image", "question"])
def test_vqa_accuracy_matches_a_per_question_loop(
    loaded: tuple[Model, EvaluationInputs], remove: str | None
) -> None:
    model, inputs = loaded
    rows = inputs.tensors.rows_in("train")[:12]
    scores = vqa_accuracy(model.network, inputs.tensors, rows, batch=5, remove=remove)
    expected = naive_typed_accuracy(model, inputs, rows.tolist(), remove)
    assert scores["typed"]["accuracy"] == pytest.approx(expected)
    assert sum(v["count"] for k, v in scores.items() if k.startswith("typed/")) == 48


def test_missing_modality_reports_drops(loaded: tuple[Model, EvaluationInputs]) -> None:
    model, inputs = loaded
    rows = inputs.tensors.rows_in("train")
    full = vqa_accuracy(model.network, inputs.tensors, rows)
    out = missing_modality(model, inputs.tensors, rows, full)
    no_image = vqa_accuracy(model.network, inputs.tensors, rows, remove="image")
    assert out["image_removed"]["typed"]["accuracy"] == no_image["typed"]["accuracy"]
    assert out["image_removed"]["spoken"]["drop"] == pytest.approx(
        full["spoken"]["accuracy"] - no_image["spoken"]["accuracy"]
    )
    with pytest.raises(ValueError, match="remove must be"):
        vqa_accuracy(model.network, inputs.tensors, rows, remove="audio")


def test_blind_model_ignores_the_image(loaded: tuple[Model, EvaluationInputs]) -> None:
    model, inputs = loaded
    network = model.network
    config = dataclasses.replace(
        network.config, model=dataclasses.replace(network.config.model, vqa_inputs="question")
    )
    blind_scores = {}
    rows = inputs.tensors.rows_in("train")[:10]
    for mode, cfg in (("both", network.config), ("question", config)):
        original = network.config
        network.config = cfg
        try:
            blind_scores[mode] = vqa_accuracy(
                network, inputs.tensors, rows, remove="image" if mode == "both" else None
            )
        finally:
            network.config = original
    assert blind_scores["question"] == blind_scores["both"]


def test_retrieval_skips_rows_without_the_modality(loaded: tuple[Model, EvaluationInputs]) -> None:
    model, inputs = loaded
    rows = inputs.tensors.rows_in("train")
    store = inputs.tensors.subset(rows)
    n = len(store)
    clips = [
        None
        if i % 2
        else store.caption_audio.frames[
            int(store.caption_audio.offsets[i]) : int(store.caption_audio.offsets[i + 1])
        ]
        for i in range(n)
    ]
    store = dataclasses.replace(
        store, caption_audio=RaggedAudio.from_rows(clips, store.caption_audio.frames.shape[1])
    )
    local = torch.arange(n)
    with torch.no_grad():
        result = retrieval_metrics(model.network, store, local)
        embeddings = embed_rows(model.network, store, local)
    half = local[::2]
    assert result["audio->text"]["queries"] == len(half)
    assert result["text->audio"]["gallery"] == len(half)
    # naive R@1 for audio->text: the best-scoring caption must share the query's content
    keys = store.content_keys
    scores = embeddings["audio"][half] @ embeddings["text"].T
    best = scores.argmax(1)
    naive = sum(keys[int(q)] == keys[int(b)] for q, b in zip(half, best, strict=True)) / len(half)
    assert result["audio->text"]["R@1"] == pytest.approx(naive)


def test_robustness_at_zero_corruption_equals_clean(loaded: tuple[Model, EvaluationInputs]) -> None:
    model, inputs = loaded
    settings = RobustnessSettings(
        image_noise_sigma=[0.0],
        image_blur_sigma=[0.0],
        audio_snr_db=[200.0],
        typo_rate=[0.0],
        fgsm_epsilon=[0.0],
        babble_talkers=2,
    )
    rows = inputs.tensors.rows_in("train")[:16]
    out = robustness_curves(model, inputs.manifest, inputs.tensors, rows, settings)
    assert out["scenes"] == 16
    clean = out["clean"]
    for name, curve in out["curves"].items():
        for metric in (k for k in curve if k not in ("x_label", "levels")):
            tolerance = 1 / 16 if name.startswith("audio") else 0.0  # f16 log-mel rounding
            assert abs(curve[metric][0] - clean[metric]) <= tolerance, (name, metric)


def test_robustness_degrades_with_strong_corruption(loaded: tuple[Model, EvaluationInputs]) -> None:
    model, inputs = loaded
    settings = RobustnessSettings(
        image_noise_sigma=[1.0],
        image_blur_sigma=[],
        audio_snr_db=[-30.0],
        typo_rate=[1.0],
        fgsm_epsilon=[0.5],
        babble_talkers=2,
    )
    rows = inputs.tensors.rows_in("train")
    out = robustness_curves(model, inputs.manifest, inputs.tensors, rows, settings)
    fgsm = out["curves"]["image_fgsm"]["vqa_typed"][0]
    assert fgsm <= out["clean"]["vqa_typed"]
    assert out["curves"]["image_blur"]["levels"] == []


def test_evaluate_writes_the_report(
    loaded: tuple[Model, EvaluationInputs], tiny_world: tuple[Path, WorldSummary], tmp_path: Path
) -> None:
    model, _ = loaded
    metrics = evaluate(
        model, tiny_world[0] / "manifest.jsonl", out=tmp_path, robustness=False, examples=0
    )
    assert set(metrics["splits"]) == {"test", "holdout"}
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["splits"]["test"]["vqa"] == metrics["splits"]["test"]["vqa"]
    assert (tmp_path / "report.md").is_file()


def test_the_whole_harness_runs_in_bf16(
    tiny_run: Path, tiny_world: tuple[Path, WorldSummary], loaded: tuple[Model, EvaluationInputs]
) -> None:
    # `auto` picks bf16 on CPUs with AMX or AVX512-BF16; every step of the harness then runs
    # under bf16 autocast, the float16 log-mel store and the robustness curves' rebuilt audio
    # included (both once failed in torch.cat there).
    model = Model.from_pretrained(tiny_run, precision="bf16")
    settings = HarnessSettings(
        robustness_scenes=8,
        robustness_levels=RobustnessSettings(
            image_noise_sigma=[0.1],
            image_blur_sigma=[],
            audio_snr_db=[10.0],
            typo_rate=[0.1],
            fgsm_epsilon=[],
            babble_talkers=2,
        ),
        examples=0,
    )
    metrics = evaluate_checkpoint(model, tiny_world[0] / "manifest.jsonl", settings)
    fp32 = evaluate_checkpoint(loaded[0], tiny_world[0] / "manifest.jsonl", settings)
    assert 0 < metrics["robustness"]["scenes"] <= 8
    assert metrics["precision"] == "bf16 (asked for)" and metrics["device"] == "cpu"
    assert fp32["precision"] == "fp32 (asked for)"
    assert metrics["robustness"]["curves"]["audio_babble_noise"]["audio->text R@1"]
    for modality in ("text->image", "audio->text"):
        bf16_recall = metrics["splits"]["test"]["retrieval"][modality]["R@1"]
        fp32_recall = fp32["splits"]["test"]["retrieval"][modality]["R@1"]
        assert abs(bf16_recall - fp32_recall) <= 0.15, modality
