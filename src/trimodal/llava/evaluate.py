"""Captions of a llava run scored as ``trimodal eval`` scores the decoder's."""

from __future__ import annotations

import os
from typing import Any

from trimodal.generation.caption_parser import caption_attribute_accuracy
from trimodal.generation.metrics import bleu, cider_d
from trimodal.llava.run import LlavaRun, captioned_samples, stored_image_tokens


def evaluate_llava(
    run: LlavaRun,
    manifest: str | os.PathLike[str],
    scenes: int = 200,
    split: str = "test",
    batch: int = 50,
) -> dict[str, Any]:
    """Greedy captions of the first ``scenes`` captioned samples of ``split``: BLEU-4 and
    CIDEr-D against each sample's caption, and the caption attribute accuracy against its
    scene graph (docs/generation.md, "Metrics").

    Returns:
        ``{split, count, bleu4, cider_d, attributes: {colors, shapes, sizes, relations,
        overall, ...}, examples: [{id, caption, reference}]}``.
    """
    if scenes < 1:
        raise ValueError(f"scenes must be >= 1, got {scenes}")
    samples = captioned_samples(manifest, split)[:scenes]
    tokens = stored_image_tokens(run.checkpoint, samples)
    captions: list[str] = []
    for start in range(0, len(samples), batch):
        captions += run.caption_tokens(tokens[start : start + batch])
    references = [[sample.text or ""] for sample in samples]
    with_scene = [i for i, s in enumerate(samples) if s.scene and s.scene.get("objects")]
    return {
        "split": split,
        "count": len(captions),
        "bleu4": bleu(captions, references),
        "cider_d": cider_d(captions, references),
        "attributes": caption_attribute_accuracy(
            [captions[i] for i in with_scene], [samples[i].scene or {} for i in with_scene]
        )
        if with_scene
        else {},
        "examples": [
            {"id": samples[i].id, "caption": captions[i], "reference": samples[i].text}
            for i in range(min(5, len(samples)))
        ],
    }
