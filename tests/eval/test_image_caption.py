"""The image-caption protocol on a manifest, and official VQA scoring through the harness,
against naive computations written here on the tiny trained model."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from trimodal import Model
from trimodal.data.manifest import Sample, load_manifest
from trimodal.data.tensors import to_float_images
from trimodal.eval.basic import vqa_accuracy
from trimodal.eval.harness import load_inputs, split_metrics
from trimodal.eval.image_caption import (
    caption_gallery,
    image_caption_metrics,
    uses_image_caption_protocol,
)
from trimodal.eval.vqa import VqaRules
from trimodal.eval.vqa import vqa_accuracy as official_accuracy
from trimodal.world.generate import WorldSummary


def _sample(
    row: int, image: str | None, text: str | None, captions: tuple[str, ...] = ()
) -> Sample:
    return Sample(
        id=f"s{row}",
        split="test",
        line=row + 1,
        image=Path(image) if image else None,
        text=text,
        captions=captions,
    )


def test_grouped_and_per_caption_rows_give_the_same_gallery() -> None:
    grouped = [
        _sample(0, "a.png", "a cat", ("a cat", "a kitten")),
        _sample(1, "b.png", "a dog", ("a dog", "a puppy", "a dog")),
        _sample(2, "b.png", "a dog", ("a dog", "a puppy", "a dog")),  # the same image again
    ]
    per_caption = [
        _sample(0, "a.png", "a cat"),
        _sample(1, "b.png", "a dog"),
        _sample(2, "a.png", "a kitten"),
        _sample(3, "b.png", "a puppy"),
        _sample(4, "c.png", None),  # no caption: not in the gallery
        _sample(5, None, "no image"),
        _sample(6, "b.png", "a dog"),  # a repeated caption still counts, as in COCO
    ]
    a = caption_gallery(grouped, range(3))
    b = caption_gallery(per_caption, range(7))
    assert a.image_rows == [0, 1] and b.image_rows == [0, 1]
    assert sorted(zip(a.captions, a.caption_image.tolist(), strict=True)) == sorted(
        zip(b.captions, b.caption_image.tolist(), strict=True)
    )
    assert a.captions == ["a cat", "a kitten", "a dog", "a puppy", "a dog"]
    assert a.caption_image.tolist() == [0, 0, 1, 1, 1]
    assert uses_image_caption_protocol(grouped) and uses_image_caption_protocol(per_caption)
    assert not uses_image_caption_protocol([_sample(0, "a.png", "x"), _sample(1, "b.png", "y")])


@pytest.fixture(scope="module")
def coco_like(
    tiny_world: tuple[Path, WorldSummary], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny world's test scenes as a COCO/VQA-style manifest: grouped captions (the scene's
    caption and two rephrasings) and questions with ten human answers."""
    world = tiny_world[0]
    rows = [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines()]
    out = tmp_path_factory.mktemp("coco_like")
    converted = []
    for row in rows:
        if row["split"] not in ("train", "test"):
            continue
        text = row["text"]
        questions = []
        for q in row["questions"]:
            humans = [q["answer"]] * 2 + ["yes"] * 8  # exact match and VQA accuracy differ
            questions.append(
                {
                    "question": q["question"],
                    "answer": q["answer"],
                    "family": q["family"],
                    "answers": [
                        {"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                        for i, a in enumerate(humans)
                    ],
                }
            )
        converted.append(
            {
                "id": row["id"],
                "split": row["split"],
                "image": str(world / row["image"]),
                "text": text,
                "captions": [text, f"a picture: {text}", f"{text} on a plain background"],
                "questions": questions,
            }
        )
    path = out / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in converted), encoding="utf-8")
    return path


def _naive_ranks(scores: torch.Tensor, relevant: torch.Tensor) -> list[int]:
    """Per query row: sort the gallery (irrelevant first at equal score), first relevant rank."""
    ranks = []
    for i in range(scores.shape[0]):
        order = sorted(
            range(scores.shape[1]), key=lambda j: (-float(scores[i, j]), bool(relevant[i, j]))
        )
        ranks.append(next(p + 1 for p, j in enumerate(order) if relevant[i, j]))
    return ranks


@torch.no_grad()
def test_image_caption_protocol_matches_naive(tiny_run: Path, coco_like: Path) -> None:
    model = Model.from_pretrained(tiny_run)
    inputs = load_inputs(model, coco_like)
    samples = inputs.manifest.samples
    rows = inputs.tensors.rows_in("test").tolist()
    result = image_caption_metrics(
        model.network, model.tokenizer, inputs.tensors, samples, rows, batch=7
    )
    assert result is not None
    network = model.network
    images = network.encode("image", to_float_images(inputs.tensors.images[rows])).pooled
    images = torch.nn.functional.normalize(images, dim=-1)
    captions, owner = [], []
    for image, row in enumerate(rows):
        for caption in samples[row].captions:
            captions.append(caption)
            owner.append(image)
    texts = model.embed_texts(captions)
    scores = texts @ images.T  # (C, I)
    owner_t = torch.tensor(owner)
    relevant = owner_t[:, None] == torch.arange(len(rows))[None, :]
    t2i = _naive_ranks(scores, relevant)
    i2t = _naive_ranks(scores.T, relevant.T)
    assert (result["images"], result["captions"]) == (len(rows), len(captions))
    for direction, ranks in (("text->image", t2i), ("image->text", i2t)):
        for k in (1, 5, 10):
            expected = sum(r <= k for r in ranks) / len(ranks)
            assert result[direction][f"R@{k}"] == pytest.approx(expected)
        assert result[direction]["median_rank"] == statistics.median(ranks)


@pytest.mark.parametrize("rules", ["official", "2017"])
@torch.no_grad()
def test_harness_reports_both_protocols_and_official_vqa(
    tiny_run: Path, coco_like: Path, rules: VqaRules
) -> None:
    model = Model.from_pretrained(tiny_run)
    inputs = load_inputs(model, coco_like)
    result = split_metrics(model, inputs, "test", prior=None, vqa_rules=rules)
    assert result["retrieval_image_caption"]["images"] == result["scenes"]
    assert "text->image" in result["retrieval"]  # the per-row protocol is still there
    # the head's answers, scored one question at a time with the official rule
    network, tensors = model.network, inputs.tensors
    rows = tensors.rows_in("test")
    scores = vqa_accuracy(network, tensors, rows, rules=rules)
    total, count = 0.0, 0
    for row in rows.tolist():
        image = network.image_context(
            network.encode("image", to_float_images(tensors.images[row : row + 1]))
        )
        for q, question in enumerate(inputs.manifest.samples[row].questions):
            mask = tensors.question_mask[row, q]
            ids = tensors.question_ids[row, q][mask].unsqueeze(0)
            text = network.encode_question(ids, torch.ones_like(ids, dtype=torch.bool))
            guess = int(network.answer_logits({"image": image, "text": text.sequence()}).argmax())
            total += official_accuracy(
                network.vocabulary.answers[guess], question.human_answers, rules
            )
            count += 1
    assert scores["typed"]["metric"] == "vqa"
    assert scores["typed"]["count"] == count
    assert scores["typed"]["accuracy"] == pytest.approx(total / count)
    assert scores["typed"]["exact_match"] != scores["typed"]["accuracy"]
    assert result["vqa"]["typed"] == scores["typed"]


def test_manifest_loads(coco_like: Path) -> None:
    assert all(s.captions for s in load_manifest(coco_like, check_files="exists").samples)
