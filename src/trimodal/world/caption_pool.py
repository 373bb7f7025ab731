"""Every caption a training scene's graph supports, tokenized once, drawn per step.

A manifest stores one caption per scene: one template and one object order out of up to 24
(:func:`trimodal.world.language.caption_variants`). A :class:`CaptionPool` holds all of them so
that stage 3 can draw a fresh one per step, and marks each token of an object phrase with that
object's grid cell: the targets of the decoder's grounding head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from trimodal.data.manifest import Manifest
from trimodal.data.tensors import pad_to_longest, row_index_table
from trimodal.data.tokenizer import TextTokenizer
from trimodal.world.language import caption_variants
from trimodal.world.question_pool import IGNORE, cell_of
from trimodal.world.scene_graphs import manifest_scenes


@dataclass
class CaptionPool:
    """Tokenized captions for some rows of a :class:`~trimodal.data.tensors.SceneTensors`.

    Attributes:
        ids / mask: ``[P, L]`` caption token ids and mask.
        cells: ``[P, L, 2]`` (column bin, row bin) of the object a token's phrase names,
            ``IGNORE`` at tokens outside object phrases and at padding.
        choices: ``[N, K]`` pool indices of each row's captions (-1: padding; rows outside the
            pool have none).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    cells: torch.Tensor
    choices: torch.Tensor

    @property
    def counts(self) -> torch.Tensor:
        """``[N]`` captions per row (0 outside the pool)."""
        return (self.choices >= 0).sum(1)

    def sample(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One pool index per row of ``rows [B]``, uniform over its captions (-1: it has none)."""
        choices = self.choices[rows]  # (B, K)
        counts = (choices >= 0).sum(1)  # (B,)
        draw = (torch.rand(len(rows), generator=generator, device="cpu") * counts).long()
        picked = choices.gather(1, draw.clamp_max(choices.shape[1] - 1)[:, None])
        return picked.squeeze(1).masked_fill(counts == 0, -1)

    def caption_ids(self, index: int) -> list[int]:
        """Token ids of pool caption ``index``."""
        return self.ids[index][self.mask[index]].tolist()

    def caption_cells(self, index: int) -> torch.Tensor:
        """``[T, 2]`` grounding targets of pool caption ``index``'s ``T`` tokens."""
        return self.cells[index][self.mask[index]]


def build_caption_pool(
    manifest: Manifest,
    rows: Sequence[int],
    tokenizer: TextTokenizer,
    max_length: int = 48,
    bins: int = 4,
) -> CaptionPool:
    """All captions (every template, every object order) of the scenes at ``rows``.

    Rows without a scene graph get none.

    Args:
        manifest: the manifest the tensors were built from (row ``i`` is sample ``i``).
        rows: the rows to pool (the training rows).
        max_length: captions are cut to this many tokens, as the stored ones are.
        bins: side of the grounding grid (see :func:`~trimodal.world.question_pool.cell_of`).
    """
    texts: list[str] = []
    named: list[list[tuple[int, int, tuple[int, int]]]] = []  # (start, end, cell) per phrase
    per_row: dict[int, range] = {}
    for row, scene in manifest_scenes(manifest, rows):
        variants = caption_variants(scene)
        per_row[row] = range(len(texts), len(texts) + len(variants))
        for variant in variants:
            texts.append(variant.text)
            named.append([(a, b, cell_of(scene.objects[i], bins)) for a, b, i in variant.spans])
    encoded = tokenizer.encode_batch_with_offsets(texts) if texts else []
    ids, mask = pad_to_longest([ids for ids, _ in encoded], max_length, tokenizer.pad_id)
    length = ids.shape[1]
    cells = np.full((*ids.shape, 2), IGNORE, dtype=np.int64)
    for index, ((_, offsets), phrases) in enumerate(zip(encoded, named, strict=True)):
        spans = np.array(offsets[:length]).reshape(-1, 2)  # (T, 2) characters of each token
        first, last, phrase_cells = (np.array(column) for column in zip(*phrases, strict=True))
        # overlap[t, k]: token t lies (partly) inside phrase k
        overlap = np.maximum(spans[:, :1], first) < np.minimum(spans[:, 1:], last)  # (T, K)
        inside = overlap.any(1)
        cells[index, : len(spans)][inside] = phrase_cells[overlap.argmax(1)[inside]]
    return CaptionPool(
        ids=ids,
        mask=mask,
        cells=torch.from_numpy(cells),
        choices=row_index_table(per_row, len(manifest.samples)),
    )
