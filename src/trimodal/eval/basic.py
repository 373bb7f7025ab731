"""Basic evaluation of a checkpoint: retrieval between modalities and VQA accuracy on a split."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F

from trimodal.data.tensors import SceneTensors, to_float_images
from trimodal.eval.retrieval import content_groups, first_hit_ranks, recall_summary
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.layers import TokenSequence

DIRECTIONS = (("text", "image"), ("image", "text"), ("audio", "text"), ("audio", "image"))


@torch.no_grad()
def embed_rows(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor, batch: int = 256
) -> dict[str, torch.Tensor]:
    """Normalized pooled embeddings ``{modality: [N, E]}`` of the rows' image, caption, audio."""
    out: dict[str, list[torch.Tensor]] = defaultdict(list)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        out["image"].append(model.encode_image(to_float_images(tensors.images[chunk])).pooled)
        ids, mask = tensors.caption_ids[chunk], tensors.caption_mask[chunk]
        out["text"].append(model.encode_padded_text(ids, mask).pooled)
        features, frame_mask = tensors.caption_audio.batch(chunk)
        out["audio"].append(model.encode_audio(features, frame_mask).pooled)
    return {name: F.normalize(torch.cat(parts), dim=-1) for name, parts in out.items()}


def retrieval_metrics(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor
) -> dict[str, Any]:
    """R@1/5/10 and median rank for text->image, image->text, audio->text, audio->image."""
    embeddings = embed_rows(model, tensors, rows)
    groups = content_groups([tensors.content_keys[i] for i in rows.tolist()])
    results: dict[str, Any] = {"gallery_size": len(rows)}
    for query, target in DIRECTIONS:
        ranks = first_hit_ranks(embeddings[query], embeddings[target], groups, groups)
        results[f"{query}->{target}"] = recall_summary(ranks)
    return results


@torch.no_grad()
def vqa_accuracy(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor, batch: int = 256
) -> dict[str, Any]:
    """Accuracy of the answer head on typed questions (all) and spoken questions, per family."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        image = model.image_context(model.encode_image(to_float_images(tensors.images[chunk])))
        _typed(model, tensors, chunk, image, hits)
        _spoken(model, tensors, chunk, image, hits)
    return {name: {"accuracy": h / max(1, n), "count": n} for name, (h, n) in sorted(hits.items())}


def _score(
    predicted: torch.Tensor,
    targets: torch.Tensor,
    families: list[str],
    prefix: str,
    hits: dict[str, list[int]],
) -> None:
    for correct, family in zip((predicted == targets).tolist(), families, strict=True):
        for key in (prefix, f"{prefix}/{family}"):
            hits[key][0] += int(correct)
            hits[key][1] += 1


def _typed(
    model: TriModalModel,
    tensors: SceneTensors,
    chunk: torch.Tensor,
    image: TokenSequence,
    hits: dict[str, list[int]],
) -> None:
    questions = tensors.question_mask[chunk].any(-1)  # (C, Q)
    scene, question = torch.nonzero(questions, as_tuple=True)
    if scene.numel() == 0:
        return
    ids, mask = (
        tensors.question_ids[chunk[scene], question],
        tensors.question_mask[chunk[scene], question],
    )
    text = model.encode_padded_text(ids, mask).sequence()
    inputs = {"image": image.select(scene), "text": text}
    predicted = model.answer_logits(inputs).argmax(-1)
    families = [
        tensors.families[int(chunk[s])][int(q)] for s, q in zip(scene, question, strict=True)
    ]
    _score(predicted, tensors.answers[chunk[scene], question], families, "typed", hits)


def _spoken(
    model: TriModalModel,
    tensors: SceneTensors,
    chunk: torch.Tensor,
    image: TokenSequence,
    hits: dict[str, list[int]],
) -> None:
    index = tensors.spoken_index[chunk]
    scene = torch.nonzero(index >= 0).squeeze(1)
    if scene.numel() == 0:
        return
    features, mask = tensors.spoken_audio.batch(chunk[scene])
    audio = model.encode_audio(features, mask).sequence()
    inputs = {"image": image.select(scene), "audio": audio}
    predicted = model.answer_logits(inputs).argmax(-1)
    families = [tensors.families[int(chunk[s])][int(index[s])] for s in scene]
    _score(predicted, tensors.answers[chunk[scene], index[scene]], families, "spoken", hits)


def evaluate(model: TriModalModel, tensors: SceneTensors, split: str = "test") -> dict[str, Any]:
    """Retrieval and VQA on ``split`` (one JSON-able dict)."""
    rows = tensors.rows_in(split)
    if len(rows) == 0:
        raise ValueError(f"split {split!r} is empty in this manifest")
    model.eval()
    return {
        "split": split,
        "retrieval": retrieval_metrics(model, tensors, rows),
        "vqa": vqa_accuracy(model, tensors, rows),
    }
