"""The question pool: valid questions of training scenes, balanced sampling, grounding cells."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from trimodal.data.manifest import Manifest, load_manifest
from trimodal.data.tokenizer import TextTokenizer, manifest_texts, train_tokenizer
from trimodal.world.generate import WorldSummary
from trimodal.world.language import candidate_questions
from trimodal.world.question_pool import IGNORE, QuestionPool, build_question_pool, cell_of
from trimodal.world.scene import Scene


@pytest.fixture(scope="module")
def pooled(
    tiny_world: tuple[Path, WorldSummary],
) -> tuple[Manifest, TextTokenizer, list[str], list[int], QuestionPool]:
    manifest = load_manifest(tiny_world[0] / "manifest.jsonl")
    tokenizer = train_tokenizer(manifest_texts(manifest), vocab_size=300)
    answers = sorted({q.answer for s in manifest.samples for q in s.questions} | {"yes", "no"})
    rows = [i for i, s in enumerate(manifest.samples) if s.split == "train"]
    pool = build_question_pool(manifest, rows, tokenizer, answers, bins=4, cap=3)
    return manifest, tokenizer, answers, rows, pool


TEMPLATES = (
    re.compile(r"^what (?:color|shape|size) is the (.+)\?$"),
    re.compile(
        r"^is the (.+) (?:to the left of|to the right of|above|below|bigger than|smaller than)"
        r" the (.+)\?$"
    ),
    re.compile(r"^are the (.+) and the (.+) the same size\?$"),
)


def _referent(phrase: str, scene: Scene) -> int:
    """The one object whose attributes cover every word of ``phrase`` (a naive reading)."""
    words = phrase.split()
    matches = [
        i
        for i, o in enumerate(scene.objects)
        if all(w in (o.size, o.color, o.shape, "object") for w in words)
    ]
    assert len(matches) == 1, (phrase, scene)
    return matches[0]


def test_pooled_questions_are_valid_with_their_answers_and_cells(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, tokenizer, answers, rows, pool = pooled
    for row in rows:
        sample = manifest.samples[row]
        assert sample.scene is not None
        scene = Scene.from_dict(sample.scene, sample.split)
        valid = {q.question: q.answer for qs in candidate_questions(scene).values() for q in qs}
        indices = pool.choices[row][pool.choices[row] >= 0].tolist()
        assert indices, f"row {row} has no pooled questions"
        for index in indices:
            text = tokenizer.decode(pool.ids[index][pool.mask[index]].tolist())
            assert valid[text] == answers[int(pool.answers[index])]
            match = next((m for t in TEMPLATES if (m := t.match(text))), None)
            expected = [IGNORE] * 4
            if match is not None:
                for k, phrase in enumerate(match.groups()):
                    expected[2 * k : 2 * k + 2] = cell_of(
                        scene.objects[_referent(phrase, scene)], 4
                    )
            assert pool.grounding[index].tolist() == expected, text


def test_cells_by_hand() -> None:
    from trimodal.world.scene import SceneObject

    obj = SceneObject("star", "red", "small", 0.10, 0.99, 0.1, 0.0)
    assert cell_of(obj, 4) == (0, 3)
    assert cell_of(SceneObject("star", "red", "small", 0.5, 0.25, 0.1, 0.0), 4) == (2, 1)
    assert cell_of(SceneObject("star", "red", "small", 1.0, 0.0, 0.1, 0.0), 4) == (3, 0)


def test_rows_outside_the_pool_have_no_questions_and_weights_sum_to_one(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, _, _, rows, pool = pooled
    outside = [i for i in range(len(manifest.samples)) if i not in set(rows)]
    assert outside and bool((pool.weights[outside] == 0).all())
    sums = pool.weights[rows].sum(1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    assert bool(((pool.choices >= 0) == (pool.weights > 0)).all())


def test_sampling_is_uniform_over_families_distinct_and_seeded(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, tokenizer, _, rows, pool = pooled
    row = max(rows, key=lambda r: int((pool.choices[r] >= 0).sum()))
    sample = manifest.samples[row]
    assert sample.scene is not None
    families = candidate_questions(Scene.from_dict(sample.scene, sample.split))
    family_of = {q.question: f for f, qs in families.items() for q in qs}
    generator = torch.Generator().manual_seed(0)
    counts: Counter[str] = Counter()
    draws = 3000
    for _ in range(draws // 3):
        positions, indices = pool.sample(torch.tensor([row]), 3, generator)
        assert positions.tolist() == [0, 0, 0] and len(set(indices.tolist())) == 3
        for index in indices.tolist():
            counts[family_of[tokenizer.decode(pool.ids[index][pool.mask[index]].tolist())]] += 1
    # three draws without replacement per call tilt the shares a little towards uniform
    # over questions; each family still gets close to 1 / (number of families)
    for family in families:
        assert abs(counts[family] / draws - 1 / len(families)) < 0.06, (family, counts)
    a = pool.sample(torch.tensor(rows), 2, torch.Generator().manual_seed(5))
    b = pool.sample(torch.tensor(rows), 2, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    outside = torch.tensor([i for i in range(len(manifest.samples)) if i not in set(rows)])
    positions, indices = pool.sample(outside, 2, generator)
    assert positions.numel() == 0 and indices.numel() == 0


def test_a_varied_pool_rewords_questions_and_keeps_answers(pooled) -> None:  # type: ignore[no-untyped-def]
    from trimodal.world.phrasing import parse

    manifest, tokenizer, answers, rows, canonical = pooled
    varied = build_question_pool(
        manifest, rows, tokenizer, answers, bins=4, cap=3, phrasing="varied"
    )
    assert torch.equal(varied.answers, canonical.answers)
    assert torch.equal(varied.choices, canonical.choices)
    texts = [
        tokenizer.decode(ids[mask].tolist())
        for ids, mask in zip(varied.ids, varied.mask, strict=True)
    ]
    reworded = [text for text in texts if parse(text) is None]
    # Each question in its canonical form or a training form: many, but not all, reworded.
    assert 0.3 * len(texts) < len(reworded) < len(texts)
    with pytest.raises(ValueError, match=r"data\.phrasing must be 'canonical' or 'varied'"):
        build_question_pool(manifest, rows, tokenizer, answers, phrasing="heldout")


def test_typos_touch_about_half_the_questions_and_keep_answers_and_cells(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, tokenizer, answers, rows, clean = pooled
    noisy = build_question_pool(manifest, rows, tokenizer, answers, bins=4, cap=3, typo_rate=0.3)
    assert torch.equal(noisy.answers, clean.answers)
    assert torch.equal(noisy.grounding, clean.grounding)
    changed = [
        not torch.equal(a[m_a], b[m_b])
        for a, m_a, b, m_b in zip(noisy.ids, noisy.mask, clean.ids, clean.mask, strict=True)
    ]
    assert 0.2 * len(changed) < sum(changed) < 0.6 * len(changed)


def test_typo_share_sets_how_many_questions_change(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, tokenizer, answers, rows, clean = pooled

    def changed_share(share: float) -> float:
        noisy = build_question_pool(
            manifest, rows, tokenizer, answers, bins=4, cap=3, typo_rate=0.3, typo_share=share
        )
        pairs = zip(noisy.ids, noisy.mask, clean.ids, clean.mask, strict=True)
        return sum(not torch.equal(a[m_a], b[m_b]) for a, m_a, b, m_b in pairs) / len(clean.ids)

    assert changed_share(0.0) == 0.0
    assert 0.02 < changed_share(0.1) < 0.2 < 0.6 < changed_share(0.9)


def test_word_dropout_thins_about_half_the_questions_and_keeps_answers(pooled) -> None:  # type: ignore[no-untyped-def]
    manifest, tokenizer, answers, rows, clean = pooled
    thinned = build_question_pool(
        manifest, rows, tokenizer, answers, bins=4, cap=3, word_dropout=0.5
    )
    assert torch.equal(thinned.answers, clean.answers)
    assert torch.equal(thinned.grounding, clean.grounding)
    shorter = [
        int(m_a.sum()) < int(m_b.sum()) for m_a, m_b in zip(thinned.mask, clean.mask, strict=True)
    ]
    assert 0.2 * len(shorter) < sum(shorter) < 0.6 * len(shorter)
    assert all(int(m.sum()) > 0 for m in thinned.mask)
