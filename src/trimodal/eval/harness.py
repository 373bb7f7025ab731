"""The evaluation harness: every metric trimodal reports for a checkpoint on a manifest.

:func:`evaluate_checkpoint` runs, on the evaluation split (and the compositional hold-out when
the manifest has one): retrieval in six directions, VQA per family (typed and spoken), blind
baselines, zero-shot classification by prompts, missing-modality degradation, robustness curves
and Grad-CAM examples; :mod:`trimodal.eval.report` turns the result into metrics.json,
report.md and plots.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trimodal.data.manifest import Manifest, load_manifest
from trimodal.data.tensors import SceneTensors, cached_scene_tensors, to_float_images
from trimodal.eval.attention import question_grad_cam
from trimodal.eval.baselines import QuestionPrior
from trimodal.eval.basic import QUESTION_MODALITY, embed_rows, retrieval_metrics, vqa_accuracy
from trimodal.eval.generation import generation_metrics
from trimodal.eval.image_caption import image_caption_metrics, uses_image_caption_protocol
from trimodal.eval.objects import object_head_accuracy, trains_object_head
from trimodal.eval.report import write_report
from trimodal.eval.robustness import RobustnessSettings, robustness_curves
from trimodal.eval.vqa import VqaRules
from trimodal.eval.zero_shot import world_zero_shot
from trimodal.inference import Model
from trimodal.modules.layers import TokenSequence

PathLike = str | os.PathLike[str]


@dataclass
class HarnessSettings:
    """What to run. ``robustness_scenes`` caps the scenes the robustness curves use."""

    split: str = "test"
    holdout_split: str = "holdout"
    robustness: bool = True
    robustness_scenes: int = 500
    robustness_levels: RobustnessSettings = field(default_factory=RobustnessSettings)
    examples: int = 6
    seed: int = 0
    baselines: Mapping[str, PathLike] = field(default_factory=dict)
    """Trained blind baselines: ``{name: checkpoint}`` (recipes with ``model.vqa_inputs``)."""
    vqa_rules: VqaRules = "official"
    """Which release of the official VQA script scores questions with human answers
    (:mod:`trimodal.eval.vqa`); the robustness curves always use ``"official"``."""


@dataclass
class EvaluationInputs:
    """A loaded manifest with its decoded tensors for one model."""

    manifest: Manifest
    tensors: SceneTensors


def load_inputs(model: Model, manifest_path: PathLike) -> EvaluationInputs:
    """Load and decode ``manifest_path`` with the model's tokenizer and preprocessing."""
    manifest = load_manifest(Path(manifest_path), check_files="exists")
    network = model.network
    tensors = cached_scene_tensors(
        manifest,
        model.tokenizer,
        network.vocabulary.answers,
        network.vocabulary.attributes,
        network.config.data.image_size,
        network.config.data.n_mels,
        max_text_length=network.config.model.text.max_length,
        config=network.config,
    )
    # The store moves to the model's device once, as in training: every batch is gathered
    # where the model runs, and what the harness compares it with is made there too.
    return EvaluationInputs(manifest, tensors.to(network.device))


def evaluate_checkpoint(
    model: Model,
    manifest_path: PathLike,
    settings: HarnessSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole harness in the model's precision; returns the metrics dict (JSON-able,
    stable keys)."""
    with model.precision.autocast():
        return _evaluate(model, manifest_path, settings or HarnessSettings(), progress)


def _evaluate(
    model: Model,
    manifest_path: PathLike,
    settings: HarnessSettings,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    say = progress or (lambda message: None)
    inputs = load_inputs(model, manifest_path)
    tensors = inputs.tensors
    model.network.eval()
    splits = [s for s in (settings.split, settings.holdout_split) if len(tensors.rows_in(s))]
    if settings.split not in splits:
        present = sorted(set(tensors.splits))
        raise ValueError(
            f"{manifest_path}: split {settings.split!r} is empty (splits present: {present})"
        )
    started = time.perf_counter()
    metrics: dict[str, Any] = {
        "manifest": str(manifest_path),
        "eval_split": settings.split,
        "vqa_rules": settings.vqa_rules,
        # bf16 moves retrieval figures by about 0.015 against fp32 (docs/performance.md), so
        # the figures say what computed them.
        "device": str(model.device),
        "precision": f"{model.precision.name} ({model.precision.reason})",
        "splits": {},
    }
    prior = _question_prior(tensors)
    for split in splits:
        say(f"retrieval, VQA, zero-shot and missing-modality on {split}")
        metrics["splits"][split] = split_metrics(model, inputs, split, prior, settings.vqa_rules)
    if settings.baselines:
        say("trained blind baselines")
        metrics["baselines"] = trained_baselines(
            settings.baselines, manifest_path, splits, settings.vqa_rules
        )
    if settings.robustness:
        say("robustness curves")
        metrics["robustness"] = robustness_curves(
            model,
            inputs.manifest,
            tensors,
            _sample_rows(tensors.rows_in(settings.split), settings.robustness_scenes, settings),
            settings.robustness_levels,
        )
    if settings.examples > 0 and bool(tensors.question_mask[tensors.rows_in(settings.split)].any()):
        say("Grad-CAM examples")
        picked = _sample_rows(tensors.rows_in(settings.split), settings.examples, settings)
        metrics["examples"] = attention_examples(model, inputs, picked)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def evaluate(
    model: Model,
    manifest_path: PathLike,
    split: str = "test",
    out: PathLike | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Run the harness on a manifest split, as ``trimodal eval`` does.

    Args:
        settings: fields of :class:`HarnessSettings` (``robustness=False`` for a quick run).
        out: also write metrics.json, report.md and plots into this folder.
    """
    with torch.no_grad():
        metrics = evaluate_checkpoint(
            model, manifest_path, HarnessSettings(split=split, **settings)
        )
    if out is not None:
        write_report(metrics, Path(out))
    return metrics


def attention_examples(
    model: Model, inputs: EvaluationInputs, rows: torch.Tensor
) -> list[dict[str, Any]]:
    """For each row: its typed question and (if any) spoken question, answered and explained.

    Each example holds JSON fields plus ``pixels`` ``[S, S, 3]`` uint8 and ``heat`` ``[S, S]``
    (removed by the report writer, which turns them into overlay PNGs).
    """
    network, tensors = model.network, inputs.tensors
    answers = network.vocabulary.answers
    examples = []
    for row in rows.tolist():
        sample = inputs.manifest.samples[row]
        image = to_float_images(tensors.images[row : row + 1])[0]
        pixels = tensors.images[row].permute(1, 2, 0).numpy()
        for kind, question in _example_questions(model, tensors, row):
            index = question_index(tensors, row, kind)
            predicted, heat = question_grad_cam(network, image, question, QUESTION_MODALITY[kind])
            truth = int(tensors.answers[row, index])
            examples.append(
                {
                    "id": sample.id,
                    "kind": kind,
                    "question": sample.questions[index].question,
                    "answer": answers[truth] if truth >= 0 else sample.questions[index].answer,
                    "predicted": answers[predicted],
                    "correct": predicted == truth,
                    "pixels": pixels,
                    "heat": heat,
                }
            )
    return examples


def question_index(tensors: SceneTensors, row: int, kind: str) -> int:
    """Which question of ``row`` an example uses: the first typed one, or the spoken one."""
    if kind == "spoken":
        return int(tensors.spoken_index[row])
    return int(torch.nonzero(tensors.question_mask[row].any(-1))[0])


def _example_questions(
    model: Model, tensors: SceneTensors, row: int
) -> list[tuple[str, TokenSequence]]:
    network = model.network
    out = []
    if bool(tensors.question_mask[row].any()):
        q = question_index(tensors, row, "typed")
        ids, mask = tensors.question_ids[row, q : q + 1], tensors.question_mask[row, q : q + 1]
        out.append(("typed", network.encode_question(ids, mask).sequence()))
    if int(tensors.spoken_index[row]) >= 0:
        features, mask = tensors.spoken_audio.batch(
            torch.tensor([row], device=tensors.has_image.device)
        )
        out.append(("spoken", network.encode("audio", features, mask).sequence()))
    return out


def split_metrics(
    model: Model,
    inputs: EvaluationInputs,
    split: str,
    prior: QuestionPrior | None,
    vqa_rules: VqaRules = "official",
) -> dict[str, Any]:
    """Retrieval, VQA (with the missing-modality variants), baselines and zero-shot on a split."""
    tensors, network = inputs.tensors, model.network
    rows = tensors.rows_in(split)
    with torch.no_grad():
        result: dict[str, Any] = {
            "scenes": len(rows),
            "retrieval": retrieval_metrics(network, tensors, rows),
        }
        samples = inputs.manifest.samples
        if uses_image_caption_protocol([samples[i] for i in rows.tolist()]):
            standard = image_caption_metrics(
                network, model.tokenizer, tensors, samples, rows.tolist()
            )
            if standard is not None:
                result["retrieval_image_caption"] = standard
        has_questions = bool(tensors.question_mask[rows].any())
        if has_questions:
            full = vqa_accuracy(network, tensors, rows, rules=vqa_rules)
            result["vqa"] = full
            result["missing_modality"] = missing_modality(model, tensors, rows, full, vqa_rules)
            if prior is not None:
                result["question_prior"] = prior.accuracy(
                    tensors, rows, network.vocabulary.answers, vqa_rules
                )
        if network.decoder is not None:
            result["generation"] = generation_metrics(
                network,
                model.tokenizer,
                tensors,
                [inputs.manifest.samples[i] for i in rows.tolist()],
                rows,
                vqa_rules=vqa_rules,
            )
        if trains_object_head(network):
            objects = object_head_accuracy(network, tensors, rows)
            if objects is not None:
                result["object_head"] = objects
        scenes = [inputs.manifest.samples[i].scene for i in rows.tolist()]
        if any(scene and scene.get("objects") for scene in scenes):
            images = embed_rows(network, tensors, rows)["image"]
            result["zero_shot"] = world_zero_shot(
                model.embed_texts, images, scenes, network.vocabulary.attributes
            )
    return result


def missing_modality(
    model: Model,
    tensors: SceneTensors,
    rows: torch.Tensor,
    full: dict[str, Any],
    vqa_rules: VqaRules = "official",
) -> dict[str, Any]:
    """VQA with the image (and every other context) removed, with the question removed, and
    with each stored context modality the model encodes removed (``video``: answered from the
    image alone), and the drop from ``full``.

    Skipped for a blind model, which already sees only one of them.
    """
    if model.network.config.model.vqa_inputs != "both":
        return {}
    out: dict[str, Any] = {}
    stored = [name for name in tensors.media if name in model.network.encoders]
    for removed in ("image", "question", *stored):
        scores = vqa_accuracy(model.network, tensors, rows, remove=removed, rules=vqa_rules)
        # per family too where a stored modality is removed: which families need the video
        kinds = scores if removed in stored else ("typed", "spoken")
        out[f"{removed}_removed"] = {
            kind: {
                "accuracy": scores[kind]["accuracy"],
                "drop": full[kind]["accuracy"] - scores[kind]["accuracy"],
            }
            for kind in kinds
            if kind in scores and kind in full
        }
    return out


def trained_baselines(
    checkpoints: Mapping[str, PathLike],
    manifest_path: PathLike,
    splits: list[str],
    vqa_rules: VqaRules = "official",
) -> dict[str, Any]:
    """VQA accuracy of trained blind models (``model.vqa_inputs`` question/image) per split."""
    out: dict[str, Any] = {}
    for name, checkpoint in checkpoints.items():
        baseline = Model.from_pretrained(checkpoint)
        loaded = load_inputs(baseline, manifest_path)
        sees = baseline.network.config.model.vqa_inputs
        with torch.no_grad():
            out[name] = {
                "checkpoint": str(checkpoint),
                "sees": sees,
                "splits": {
                    split: vqa_accuracy(
                        baseline.network,
                        loaded.tensors,
                        loaded.tensors.rows_in(split),
                        rules=vqa_rules,
                    )
                    for split in splits
                },
            }
    return out


def _question_prior(tensors: SceneTensors) -> QuestionPrior | None:
    train_rows = tensors.rows_in("train")
    if len(train_rows) == 0 or not bool(tensors.question_mask[train_rows].any()):
        return None
    return QuestionPrior(tensors, train_rows)


def _sample_rows(rows: torch.Tensor, limit: int, settings: HarnessSettings) -> torch.Tensor:
    """At most ``limit`` of ``rows``, a seeded random subset in ascending order."""
    if limit <= 0 or len(rows) <= limit:
        return rows
    generator = torch.Generator().manual_seed(settings.seed)
    picked = torch.randperm(len(rows), generator=generator, device="cpu")[:limit]
    return rows[picked.sort().values.to(rows.device)]
