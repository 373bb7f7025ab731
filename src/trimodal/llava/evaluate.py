"""Captions of a llava run scored as ``trimodal eval`` scores the decoder's."""

from __future__ import annotations

import os
from typing import Any

from trimodal.eval.generation import caption_scores
from trimodal.llava.run import LlavaRun, captioned_samples, stored_image_tokens


def evaluate_llava(
    run: LlavaRun,
    manifest: str | os.PathLike[str],
    scenes: int = 200,
    split: str = "test",
    batch: int = 50,
) -> dict[str, Any]:
    """Greedy captions of the first ``scenes`` captioned samples of ``split``, scored as
    ``trimodal eval`` scores the decoder's (:func:`~trimodal.eval.generation.caption_scores`:
    BLEU-4, CIDEr-D, attribute accuracy; docs/generation.md, "Metrics").

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
    return {
        "split": split,
        **caption_scores(captions, samples),
        "examples": [
            {"id": samples[i].id, "caption": captions[i], "reference": samples[i].text}
            for i in range(min(5, len(samples)))
        ],
    }
