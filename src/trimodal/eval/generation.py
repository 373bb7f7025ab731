"""Evaluate the decoder: captions (BLEU-4, CIDEr-D, attribute accuracy), transcripts (WER) and
generative VQA (exact match, and the official VQA accuracy where questions have human answers).

Captions are generated greedily for each scene's image and compared with the scene's caption
(the single reference) and, parsed back into objects and relations, with its scene graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from trimodal.data.manifest import Sample
from trimodal.data.tensors import SceneTensors, to_float_images
from trimodal.data.tokenizer import TextTokenizer
from trimodal.eval.vqa import AnswerScores, VqaRules, exact_match
from trimodal.generation.caption_parser import caption_attribute_accuracy
from trimodal.generation.chat import (
    CAPTION_PROMPT,
    SPOKEN_PROMPT,
    TRANSCRIBE_PROMPT,
    render_ids,
)
from trimodal.generation.conditioning import generate_replies
from trimodal.generation.metrics import bleu, cider_d, word_error_rate
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.layers import TokenSequence


class GeneratedAnswer(NamedTuple):
    """A decoded answer with its question's reference answer and human answers (maybe none)."""

    reply: str
    truth: str
    human_answers: list[str]


def _replies(
    model: TriModalModel,
    tokenizer: TextTokenizer,
    prefixes: TokenSequence,
    prompts: Sequence[str | list[int]],
    max_new_tokens: int,
) -> list[str]:
    assert model.decoder is not None
    rows = [render_ids(tokenizer, [("user", p)], open_reply=True)[0] for p in prompts]
    replies = generate_replies(
        model.decoder, prefixes, rows, tokenizer.pad_id, tokenizer.eos_id, max_new_tokens
    )
    return [tokenizer.decode(r).strip() for r in replies]


@torch.no_grad()
def generation_metrics(
    model: TriModalModel,
    tokenizer: TextTokenizer,
    tensors: SceneTensors,
    samples: Sequence[Sample],
    rows: torch.Tensor,
    batch: int = 64,
    max_new_tokens: int = 40,
    vqa_rules: VqaRules = "official",
) -> dict[str, Any]:
    """Caption, transcript and generative-VQA metrics on ``rows`` (``samples`` are their rows).

    Returns:
        ``{"caption": {bleu4, cider_d, attributes: {...}, count}, "transcribe": {wer, count},
        "vqa_typed": {exact_match, count, ...}, "vqa_spoken": {...}, "examples": [...]}``;
        the VQA entries add ``vqa_accuracy`` (official) where questions have human answers.
    """
    captions, transcripts, typed, spoken = [], [], [], []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        image = model.encode("image", to_float_images(tensors.images[chunk])).sequence()
        captions += _replies(
            model,
            tokenizer,
            model.decoder_prefix(("image", image)),
            [CAPTION_PROMPT] * len(chunk),
            max_new_tokens,
        )
        voiced = chunk[tensors.has_audio[chunk]]
        if len(voiced):
            features, mask = tensors.caption_audio.batch(voiced)
            audio = model.encode("audio", features, mask).sequence()
            said = _replies(
                model,
                tokenizer,
                model.decoder_prefix(("audio", audio)),
                [TRANSCRIBE_PROMPT] * len(voiced),
                max_new_tokens,
            )
            transcripts += list(zip(voiced.tolist(), said, strict=True))
        typed += _typed_answers(model, tokenizer, tensors, chunk, image)
        spoken += _spoken_answers(model, tokenizer, tensors, chunk, image)
    texts = [s.text or "" for s in samples]
    return {
        "caption": caption_scores(captions, samples),
        "transcribe": _wer(transcripts, rows, texts),
        "vqa_typed": _answer_scores(typed, vqa_rules),
        "vqa_spoken": _answer_scores(spoken, vqa_rules),
        "examples": [
            {"id": samples[i].id, "caption": captions[i], "reference": texts[i]}
            for i in range(min(5, len(captions)))
        ],
    }


def caption_scores(captions: Sequence[str], samples: Sequence[Sample]) -> dict[str, Any]:
    """``{count, bleu4, cider_d, attributes}`` of one caption per sample: BLEU-4 and CIDEr-D
    against each sample's caption (the single reference), and the attribute accuracy against
    the scene graphs of the samples that have objects (``{}`` when none has)."""
    references = [[s.text or ""] for s in samples]
    with_scene = [i for i, s in enumerate(samples) if (s.scene or {}).get("objects")]
    return {
        "count": len(captions),
        "bleu4": bleu(captions, references),
        "cider_d": cider_d(captions, references),
        "attributes": caption_attribute_accuracy(
            [captions[i] for i in with_scene], [samples[i].scene or {} for i in with_scene]
        )
        if with_scene
        else {},
    }


def _wer(
    transcripts: list[tuple[int, str]], rows: torch.Tensor, texts: list[str]
) -> dict[str, Any]:
    """Corpus WER of transcripts ``(row, text)`` against the captions of those rows."""
    if not transcripts:
        return {"count": 0}
    position = {row: i for i, row in enumerate(rows.tolist())}
    references = [texts[position[row]] for row, _ in transcripts]
    return {
        "count": len(transcripts),
        "wer": word_error_rate([said for _, said in transcripts], references),
    }


def _typed_answers(
    model: TriModalModel,
    tokenizer: TextTokenizer,
    tensors: SceneTensors,
    chunk: torch.Tensor,
    image: TokenSequence,
) -> list[GeneratedAnswer]:
    scene, question = torch.nonzero(tensors.answers[chunk] >= 0, as_tuple=True)
    if scene.numel() == 0:
        return []
    prompts = [
        tensors.question_ids[chunk[s], q][tensors.question_mask[chunk[s], q]].tolist()
        for s, q in zip(scene.tolist(), question.tolist(), strict=True)
    ]
    replies = _replies(
        model, tokenizer, model.decoder_prefix(("image", image.select(scene))), prompts, 8
    )
    asked = list(zip(chunk[scene].tolist(), question.tolist(), strict=True))
    return _with_truths(model, tensors, replies, asked)


def _spoken_answers(
    model: TriModalModel,
    tokenizer: TextTokenizer,
    tensors: SceneTensors,
    chunk: torch.Tensor,
    image: TokenSequence,
) -> list[GeneratedAnswer]:
    index = tensors.spoken_index[chunk]
    scene = torch.nonzero(index >= 0).squeeze(1)
    scene = scene[tensors.answers[chunk[scene], index[scene]] >= 0]
    if scene.numel() == 0:
        return []
    features, mask = tensors.spoken_audio.batch(chunk[scene])
    question = model.encode("audio", features, mask).sequence()
    prefix = model.decoder_prefix(("image", image.select(scene)), ("audio", question))
    replies = _replies(model, tokenizer, prefix, [SPOKEN_PROMPT] * len(scene), 8)
    asked = list(zip(chunk[scene].tolist(), index[scene].tolist(), strict=True))
    return _with_truths(model, tensors, replies, asked)


def _with_truths(
    model: TriModalModel,
    tensors: SceneTensors,
    replies: list[str],
    asked: list[tuple[int, int]],
) -> list[GeneratedAnswer]:
    """Pair each reply with its question's reference answer and human answers."""
    vocabulary = model.vocabulary.answers
    return [
        GeneratedAnswer(
            reply, vocabulary[int(tensors.answers[row, q])], tensors.human_answers[row][q]
        )
        for reply, (row, q) in zip(replies, asked, strict=True)
    ]


def _answer_scores(answers: list[GeneratedAnswer], rules: VqaRules) -> dict[str, Any]:
    """Exact match of every reply; the official VQA accuracy of those with human answers."""
    scores = AnswerScores(rules=rules)
    for answer in answers:
        correct = exact_match(answer.reply, answer.truth)
        scores.add(("all",), correct, answer.reply, answer.human_answers)
    table = scores.table().get("all", {"exact_match": 0.0, "count": 0})
    return {key: value for key, value in table.items() if key not in ("accuracy", "metric")}
