"""Every caption a training scene's graph supports, tokenized once, drawn per step.

A manifest stores one caption per scene: one template and one object order out of up to 24
(:func:`trimodal.world.language.all_captions`). A decoder trained on that one caption for many
epochs learns it by heart, spatial relation included, instead of reading the relation off the
image. A :class:`CaptionPool` holds all of them so that stage 3 can draw a fresh one per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trimodal.data.manifest import Manifest
from trimodal.data.tensors import tokenized
from trimodal.data.tokenizer import TextTokenizer
from trimodal.world.language import all_captions
from trimodal.world.scene import Scene


@dataclass
class CaptionPool:
    """Tokenized captions for some rows of a :class:`~trimodal.data.tensors.SceneTensors`.

    Attributes:
        ids / mask: ``[P, L]`` caption token ids and mask.
        choices: ``[N, K]`` pool indices of each row's captions (-1: padding; rows outside the
            pool have none).
        counts: ``[N]`` captions per row (0 outside the pool).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    choices: torch.Tensor
    counts: torch.Tensor

    def sample(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One pool index per row of ``rows [B]``, uniform over its captions (-1: it has none)."""
        counts = self.counts[rows]  # (B,)
        draw = (torch.rand(len(rows), generator=generator) * counts).long()
        picked = self.choices[rows].gather(1, draw.clamp_max(self.choices.shape[1] - 1)[:, None])
        return picked.squeeze(1).masked_fill(counts == 0, -1)

    def caption_ids(self, index: int) -> list[int]:
        """Token ids of pool caption ``index``."""
        return self.ids[index][self.mask[index]].tolist()


def build_caption_pool(
    manifest: Manifest, rows: Sequence[int], tokenizer: TextTokenizer, max_length: int = 48
) -> CaptionPool:
    """All captions (every template, every object order) of the scenes at ``rows``.

    Rows without a scene graph get none.

    Args:
        manifest: the manifest the tensors were built from (row ``i`` is sample ``i``).
        rows: the rows to pool (the training rows).
        max_length: captions are cut to this many tokens, as the stored ones are.
    """
    texts: list[str] = []
    per_row: dict[int, range] = {}
    for row in rows:
        sample = manifest.samples[row]
        if sample.scene is None:
            continue
        captions = all_captions(Scene.from_dict(sample.scene, sample.split))
        per_row[row] = range(len(texts), len(texts) + len(captions))
        texts += captions
    ids, mask = tokenized(tokenizer, texts, max_length)
    width = max((len(r) for r in per_row.values()), default=1)
    choices = torch.full((len(manifest.samples), width), -1, dtype=torch.long)
    counts = torch.zeros(len(manifest.samples), dtype=torch.long)
    for row, indices in per_row.items():
        choices[row, : len(indices)] = torch.tensor(list(indices))
        counts[row] = len(indices)
    return CaptionPool(ids=ids, mask=mask, choices=choices, counts=counts)
