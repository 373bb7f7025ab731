"""The caption pool: every caption of each training scene, drawn uniformly per row."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from trimodal.data.manifest import Manifest, load_manifest
from trimodal.data.tokenizer import TextTokenizer, manifest_texts, train_tokenizer
from trimodal.world.caption_pool import CaptionPool, build_caption_pool
from trimodal.world.generate import WorldSummary
from trimodal.world.language import all_captions
from trimodal.world.question_pool import cell_of
from trimodal.world.scene import Scene


@pytest.fixture(scope="module")
def pooled(
    tiny_world: tuple[Path, WorldSummary],
) -> tuple[Manifest, TextTokenizer, list[int], CaptionPool]:
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=300)
    rows = [i for i, s in enumerate(manifest.samples) if s.split == "train"]
    return manifest, tokenizer, rows, build_caption_pool(manifest, rows, tokenizer, max_length=200)


def _texts(pool: CaptionPool, tokenizer: TextTokenizer, row: int) -> list[str]:
    indices = pool.choices[row, : int(pool.counts[row])].tolist()
    return [tokenizer.decode(pool.caption_ids(i)) for i in indices]


def test_each_row_holds_exactly_its_scenes_captions(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, tokenizer, rows, pool = pooled
    for row in rows:
        sample = manifest.samples[row]
        assert sample.scene is not None
        expected = all_captions(Scene.from_dict(sample.scene, sample.split))
        assert sorted(_texts(pool, tokenizer, row)) == sorted(expected)
        assert sample.text in expected  # the stored caption is one of them
    outside = [i for i in range(len(manifest.samples)) if i not in set(rows)]
    assert outside and all(int(pool.counts[i]) == 0 for i in outside)


def test_sampling_is_uniform_seeded_and_marks_rows_without_captions(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, _, rows, pool = pooled
    three = next(r for r in rows if int(pool.counts[r]) == 24)
    outside = next(i for i in range(len(manifest.samples)) if int(pool.counts[i]) == 0)
    batch = torch.tensor([three, outside])
    draws = [pool.sample(batch, torch.Generator().manual_seed(s)) for s in range(2400)]
    assert all(int(d[1]) == -1 for d in draws)
    counts = Counter(int(d[0]) for d in draws)
    assert set(counts) == set(pool.choices[three].tolist())
    assert max(counts.values()) < 2 * min(counts.values())  # about 100 each
    again = pool.sample(batch, torch.Generator().manual_seed(7))
    assert torch.equal(again, draws[7])


def test_phrase_tokens_carry_their_objects_cell(pooled) -> None:  # type: ignore[no-untyped-def]
    """Runs of tokens with one cell decode to the phrase of an object in that cell; every
    object phrase is found, and words outside phrases carry none."""
    manifest, tokenizer, rows, pool = pooled
    for row in rows[:20]:
        sample = manifest.samples[row]
        assert sample.scene is not None
        scene = Scene.from_dict(sample.scene, sample.split)
        for index in pool.choices[row, : int(pool.counts[row])].tolist():
            ids, cells = pool.caption_ids(index), pool.caption_cells(index).tolist()
            runs: list[tuple[list[int], list[int]]] = []  # (cell, ids) of consecutive tokens
            for token, cell in zip(ids, cells, strict=True):
                if runs and runs[-1][0] == cell:
                    runs[-1][1].append(token)
                else:
                    runs.append((cell, [token]))
            phrases = []
            for cell, tokens in runs:
                text = tokenizer.decode(tokens).strip()
                if cell == [-100, -100]:
                    assert not any(o.phrase() in text for o in scene.objects)
                    continue
                owner = [o for o in scene.objects if o.phrase() == text]
                assert owner and cell_of(owner[0], 4) == tuple(cell), (text, cell)
                phrases.append(text)
            assert sorted(phrases) == sorted(o.phrase() for o in scene.objects)
