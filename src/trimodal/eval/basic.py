"""Basic evaluation of a checkpoint: retrieval between modalities and VQA accuracy on a split."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F

from trimodal.data.tensors import SceneTensors, content_groups
from trimodal.eval.retrieval import first_hit_ranks, recall_summary
from trimodal.eval.vqa import AnswerScores, VqaRules
from trimodal.models.stored_rows import context_modalities, question_context, row_encoders
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.layers import TokenSequence

DIRECTIONS = (
    ("text", "image"),
    ("image", "text"),
    ("text", "audio"),
    ("audio", "text"),
    ("image", "audio"),
    ("audio", "image"),
)
QUESTION_MODALITY = {"typed": "text", "spoken": "audio"}


def retrieval_directions(modalities: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """:data:`DIRECTIONS` then, for every other modality of ``modalities`` (``video``), both
    directions against text, audio and image."""
    extra = [m for m in modalities if m not in ("image", "text", "audio")]
    return DIRECTIONS + tuple(
        pair
        for m in extra
        for other in ("text", "audio", "image")
        if other in modalities
        for pair in ((other, m), (m, other))
    )


@torch.no_grad()
def embed_rows(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor, batch: int = 256
) -> dict[str, torch.Tensor]:
    """Normalized pooled embeddings ``{modality: [N, E]}`` of the rows' image, caption, audio
    and stored modalities the model encodes (``video``).

    Only rows that have a caption (audio, video) are encoded as text (audio, video); the others
    keep a zero vector, which retrieval never uses. A manifest with no audio at all is fine.
    """
    out: dict[str, list[torch.Tensor]] = defaultdict(list)
    encoders = row_encoders(model, tensors)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        image = encoders["image"](chunk).pooled
        out["image"].append(image)
        for modality in [m for m in encoders if m != "image"]:
            embedded = torch.zeros_like(image)
            if bool((keep := tensors.has(modality)[chunk]).any()):
                embedded[keep] = encoders[modality](chunk[keep]).pooled
            out[modality].append(embedded)
    return {name: F.normalize(torch.cat(parts), dim=-1) for name, parts in out.items()}


def retrieval_metrics(
    model: TriModalModel,
    tensors: SceneTensors,
    rows: torch.Tensor,
    directions: tuple[tuple[str, str], ...] | None = None,
) -> dict[str, Any]:
    """R@1/5/10 and median rank in each direction (default: every direction between the
    modalities present, :func:`retrieval_directions`); the gallery is ``rows`` (size reported).

    Rows lacking a modality (no caption audio, say) take part in no direction that needs it.
    """
    embeddings = embed_rows(model, tensors, rows)
    present = {m: tensors.has(m)[rows] for m in embeddings}
    directions = directions or retrieval_directions(tuple(embeddings))
    groups = content_groups([tensors.content_keys[i] for i in rows.tolist()], rows.device)
    results: dict[str, Any] = {"gallery_size": len(rows)}
    for query, target in directions:
        if query not in present or target not in present:
            continue
        q, g = present[query], present[target]
        if not bool(q.any()) or not bool(g.any()):
            continue
        ranks = first_hit_ranks(embeddings[query][q], embeddings[target][g], groups[q], groups[g])
        results[f"{query}->{target}"] = recall_summary(ranks) | {
            "queries": int(q.sum()),
            "gallery": int(g.sum()),
        }
    return results


@torch.no_grad()
def vqa_accuracy(
    model: TriModalModel,
    tensors: SceneTensors,
    rows: torch.Tensor,
    batch: int = 256,
    remove: str | None = None,
    rules: VqaRules = "official",
) -> dict[str, Any]:
    """Accuracy of the answer head on typed and spoken questions, overall and per family.

    A question with human answers (VQA v2) is scored with the official VQA accuracy of the
    head's answer string; every question also gets exact match (see :class:`AnswerScores`).

    Args:
        remove: ``None``, ``"image"`` (answer from the question alone: no image and no other
            context such as a video), ``"question"`` (answer from the context alone) or a
            stored context modality's name (``"video"``: answer without it): the
            missing-modality evaluation.
        rules: which release of the official VQA script scores questions with human answers.

    Returns:
        ``{"typed": {"accuracy", "exact_match", "count", "metric", ...}, "typed/<family>": ...,
        "spoken": ..., ...}``.
    """
    allowed = (None, "image", "question", *tensors.media)
    if remove not in allowed:
        raise ValueError(f"remove must be one of {allowed}, got {remove!r}")
    scores = AnswerScores(rules=rules)
    encoders = row_encoders(model, tensors)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        stored = {name: encoders[name](chunk) for name in context_modalities(model, tensors, chunk)}
        context = question_context(model, encoders["image"](chunk), stored)
        _typed(model, tensors, chunk, context, scores, remove)
        _spoken(model, tensors, chunk, context, scores, remove)
    return scores.table()


def _answer(
    model: TriModalModel,
    context: dict[str, TokenSequence],
    question: TokenSequence,
    modality: str,
    remove: str | None,
) -> torch.Tensor:
    inputs = context | {modality: question}
    if remove == "image":
        inputs = {modality: question}
    elif remove == "question":
        del inputs[modality]
    elif remove is not None:
        inputs.pop(remove, None)
    return model.answer_logits(inputs).argmax(-1)


def _selected(context: dict[str, TokenSequence], scene: torch.Tensor) -> dict[str, TokenSequence]:
    return {name: tokens.select(scene) for name, tokens in context.items()}


def _score(
    model: TriModalModel,
    tensors: SceneTensors,
    asked: tuple[torch.Tensor, torch.Tensor],
    predicted: torch.Tensor,
    prefix: str,
    scores: AnswerScores,
) -> None:
    """Score the predicted answer indices ``[K]`` of the questions ``asked`` (rows, indices)."""
    rows, questions = asked
    targets = tensors.answers[rows, questions]
    vocabulary = model.vocabulary.answers
    for row, q, guess, target in zip(
        rows.tolist(), questions.tolist(), predicted.tolist(), targets.tolist(), strict=True
    ):
        family = tensors.families[row][q]
        humans = tensors.human_answers[row][q]
        scores.add((prefix, f"{prefix}/{family}"), guess == target, vocabulary[guess], humans)


def _typed(
    model: TriModalModel,
    tensors: SceneTensors,
    chunk: torch.Tensor,
    context: dict[str, TokenSequence],
    scores: AnswerScores,
    remove: str | None = None,
) -> None:
    questions = tensors.question_mask[chunk].any(-1)  # (C, Q)
    scene, question = torch.nonzero(questions, as_tuple=True)
    if scene.numel() == 0:
        return
    ids, mask = (
        tensors.question_ids[chunk[scene], question],
        tensors.question_mask[chunk[scene], question],
    )
    text = model.encode_question(ids, mask).sequence()
    predicted = _answer(model, _selected(context, scene), text, "text", remove)
    _score(model, tensors, (chunk[scene], question), predicted, "typed", scores)


def _spoken(
    model: TriModalModel,
    tensors: SceneTensors,
    chunk: torch.Tensor,
    context: dict[str, TokenSequence],
    scores: AnswerScores,
    remove: str | None = None,
) -> None:
    index = tensors.spoken_index[chunk]
    scene = torch.nonzero(index >= 0).squeeze(1)
    if scene.numel() == 0:
        return
    features, mask = tensors.spoken_audio.batch(chunk[scene])
    audio = model.encode("audio", features, mask).sequence()
    predicted = _answer(model, _selected(context, scene), audio, "audio", remove)
    _score(model, tensors, (chunk[scene], index[scene]), predicted, "spoken", scores)
