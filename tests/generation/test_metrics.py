"""Caption metrics against hand-computed values, naive re-implementations and the world itself."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from trimodal.generation.caption_parser import (
    ParsedCaption,
    ParsedObject,
    ParsedRelation,
    attribute_accuracy,
    caption_attribute_accuracy,
    parse_caption,
)
from trimodal.generation.metrics import bleu, cider_d, tokenize_caption, word_error_rate
from trimodal.world.language import CAPTION_TEMPLATES, caption
from trimodal.world.scene import COLORS, SHAPES, SIZES, Scene, SceneObject, sample_scene

SEED = 5


def _plain(scene: Scene, seed: list[int]) -> str:
    """A world caption as space-separated tokens, so the naive metrics can ``split()`` it."""
    return " ".join(tokenize_caption(caption(scene, np.random.default_rng(seed))))


def _world_corpus(scenes: int) -> tuple[list[str], list[list[str]]]:
    """Candidates and two references per scene; every third candidate describes another scene."""
    candidates, references = [], []
    for index in range(scenes):
        scene = sample_scene(index, SEED)
        own = [_plain(scene, [SEED, index, k]) for k in range(3)]
        other = _plain(sample_scene(index + 1000, SEED), [index])
        candidates.append(own[0] if index % 3 else other)
        references.append(own[1:])
    return candidates, references


# ---------------------------------------------------------------- tokenization


def test_tokenize_caption_lowercases_and_splits_on_non_alphanumerics() -> None:
    assert tokenize_caption("A Red circle,  and a\tstar-shape; isn't 3D!") == [
        *("a", "red", "circle", "and", "a", "star", "shape", "isn", "t", "3d"),
    ]
    assert tokenize_caption(" ,.") == []


# ---------------------------------------------------------------- BLEU


def test_bleu_matches_hand_computed_corpus_value() -> None:
    candidates = ["a red circle left of a square", "a small white star"]
    references = [
        ["a red circle left of a blue square", "a red circle next to a square"],
        ["a small star", "one small white star"],
    ]
    # 1-grams: 7/7 ("a" x2 clipped at 2 by ref 1) + 4/4                      -> p1 = 11/11
    # 2-grams: a red, red circle, circle left, left of, of a (ref 1), a square (ref 2) = 6/6;
    #          a small (ref 1), small white, white star (ref 2) = 3/3           -> p2 = 9/9
    # 3-grams: 4/5 ("of a square" in neither ref); "small white star" 1/2      -> p3 = 5/7
    # 4-grams: 3/4 ("left of a square" unmatched); "a small white star" 0/1    -> p4 = 3/5
    # lengths: c = 7 + 4 = 11; closest refs 7 (of 8, 7) and 4 (of 3, 4): r = 11 -> BP = 1
    expected = (1.0 * 1.0 * (5 / 7) * (3 / 5)) ** 0.25
    assert bleu(candidates, references) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.8091067, abs=1e-7)


def test_bleu_brevity_penalty_uses_the_closest_reference_length() -> None:
    # every n-gram of the 4-word candidate matches; closest of (7, 6) to 4 is 6
    refs = [["a small red circle on the left", "there is a small red circle"]]
    assert bleu(["a small red circle"], refs) == pytest.approx(math.exp(1 - 6 / 4))
    # ties go to the shorter reference: lengths 3 and 5 around 4 -> r = 3 <= c, no penalty
    assert bleu(["a small red circle"], [["small red circle", "a small red circle too"]]) == 1.0


def test_bleu_clips_counts_and_is_zero_without_smoothing() -> None:
    # unigrams: "red" x4 clipped by its 2 occurrences in the reference -> 2/4; c = r = 4
    assert bleu(["red red red red"], [["a red circle red"]], n=1) == pytest.approx(0.5)
    assert bleu(["red red red red"], [["a red circle red"]]) == 0.0  # no 2-gram match
    assert bleu(["a red"], [["a red"]]) == 0.0  # no 3- or 4-grams at all


def _naive_bleu(candidates: list[str], references: list[list[str]], n: int = 4) -> float:
    """Textbook BLEU with explicit n-gram lists and no Counter arithmetic."""
    log_precisions = []
    for order in range(1, n + 1):
        hits = total = 0
        for candidate, refs in zip(candidates, references, strict=True):
            words = candidate.split()
            grams = [tuple(words[i : i + order]) for i in range(len(words) - order + 1)]
            ref_grams = []
            for ref in refs:
                ref_words = ref.split()
                ref_grams.append(
                    [tuple(ref_words[i : i + order]) for i in range(len(ref_words) - order + 1)]
                )
            for gram in set(grams):
                ceiling = max(rg.count(gram) for rg in ref_grams)
                hits += min(grams.count(gram), ceiling)
            total += len(grams)
        if hits == 0:
            return 0.0
        log_precisions.append(math.log(hits / total))
    c = sum(len(cand.split()) for cand in candidates)
    r = 0
    for candidate, refs in zip(candidates, references, strict=True):
        lengths = sorted(len(ref.split()) for ref in refs)
        r += min(lengths, key=lambda length: abs(length - len(candidate.split())))
    penalty = 1.0 if c > r else math.exp(1 - r / c)
    return penalty * math.exp(sum(log_precisions) / n)


def test_bleu_agrees_with_a_naive_implementation_on_world_captions() -> None:
    candidates, references = _world_corpus(60)
    for size in (3, 20, 60):
        expected = _naive_bleu(candidates[:size], references[:size])
        assert 0 < expected < 1
        assert bleu(candidates[:size], references[:size]) == pytest.approx(expected, abs=1e-12)


def test_bleu_rejects_malformed_corpora() -> None:
    with pytest.raises(ValueError, match="one list of references per candidate"):
        bleu(["a"], [])
    with pytest.raises(ValueError, match="candidate 0 has no references"):
        bleu(["a"], [[]])


# ---------------------------------------------------------------- CIDEr-D


def test_cider_d_matches_hand_computed_unigram_value() -> None:
    references = [["red circle", "blue circle"], ["red square", "red square"]]
    # 2 images -> idf = ln 2 - ln df: "red" is in both images (idf 0); circle, blue, square: ln 2
    # image 1, "blue circle" = (blue ln2, circle ln2), norm sqrt(2) ln2:
    #   vs "red circle" (red 0, circle ln2): cosine = ln2 * ln2 / (sqrt(2) ln2 * ln2) = 1/sqrt(2)
    #   vs "blue circle": cosine 1                     -> 10 * (1 + 1/sqrt(2)) / 2
    # image 2, "red square" equals both references     -> 10
    image_1 = 10 * (1 + 1 / math.sqrt(2)) / 2
    assert cider_d(["blue circle", "red square"], references, n=1) == pytest.approx(
        (image_1 + 10) / 2
    )
    # "square" has cosine 1 with "red square" (red weighs 0) but is one word shorter:
    # Gaussian penalty exp(-1 / (2 * 6^2))
    assert cider_d(["blue circle", "square"], references, n=1) == pytest.approx(
        (image_1 + 10 * math.exp(-1 / 72)) / 2
    )


def _grams(text: str, order: int) -> list[tuple[str, ...]]:
    words = text.split()
    return [tuple(words[i : i + order]) for i in range(len(words) - order + 1)]


def _term_frequencies(text: str, order: int, position: dict[tuple[str, ...], int]) -> np.ndarray:
    tf = np.zeros(len(position))
    for gram in _grams(text, order):
        tf[position[gram]] += 1
    return tf


def _naive_cider_d(
    candidates: list[str], references: list[list[str]], n: int = 4, sigma: float = 6.0
) -> float:
    """CIDEr-D with dense numpy TF-IDF vectors over an explicit n-gram vocabulary."""
    all_texts = candidates + [r for refs in references for r in refs]
    per_image = np.zeros((len(candidates), n))
    for order in range(1, n + 1):
        vocabulary = sorted({g for text in all_texts for g in _grams(text, order)})
        position = {g: i for i, g in enumerate(vocabulary)}
        df = np.zeros(len(vocabulary))
        for refs in references:
            for gram in {g for r in refs for g in _grams(r, order)}:
                df[position[gram]] += 1
        idf = np.log(len(references)) - np.log(np.maximum(df, 1.0))
        for image, (candidate, refs) in enumerate(zip(candidates, references, strict=True)):
            cand = _term_frequencies(candidate, order, position) * idf
            for ref_text in refs:
                ref = _term_frequencies(ref_text, order, position) * idf
                norms = np.linalg.norm(cand) * np.linalg.norm(ref)
                cosine = np.minimum(cand, ref) @ ref / norms if norms > 0 else 0.0
                delta = len(candidate.split()) - len(ref_text.split())
                per_image[image, order - 1] += cosine * np.exp(-(delta**2) / (2 * sigma**2))
            per_image[image, order - 1] /= len(refs)
    return float((10 * per_image.mean(axis=1)).mean())


def test_cider_d_agrees_with_a_naive_implementation_on_world_captions() -> None:
    candidates, references = _world_corpus(40)
    for size, sigma in ((2, 6.0), (40, 6.0), (40, 2.0)):
        expected = _naive_cider_d(candidates[:size], references[:size], sigma=sigma)
        assert expected > 0
        result = cider_d(candidates[:size], references[:size], sigma=sigma)
        assert result == pytest.approx(expected, rel=1e-9)


def test_cider_d_is_maximal_when_the_candidate_repeats_its_reference() -> None:
    scenes = [sample_scene(index, SEED) for index in range(12)]
    texts = [caption(scene, np.random.default_rng(index)) for index, scene in enumerate(scenes)]
    references = [[text, text] for text in texts]
    assert cider_d(texts, references) == pytest.approx(10.0)
    shifted = texts[1:] + texts[:1]
    for alternative in (
        shifted,
        [t + " again" for t in texts],
        [t.split(" ", 1)[1] for t in texts],
    ):
        assert cider_d(alternative, references) < 10.0


def test_cider_d_length_penalty_lowers_the_score() -> None:
    references = [["a red circle above a blue square"], ["a green star"]]
    same_length = ["a red circle below a blue square", "a green star"]
    longer = ["a red circle far above a blue square", "a green star"]
    # equal lengths: the penalty is 1 whatever sigma is
    assert cider_d(same_length, references) == pytest.approx(
        cider_d(same_length, references, sigma=1e9)
    )
    assert cider_d(longer, references) < cider_d(longer, references, sigma=1e9)
    assert cider_d(longer, references, sigma=1.0) < cider_d(longer, references)


# ---------------------------------------------------------------- WER


@pytest.mark.parametrize(
    ("hypothesis", "reference", "edits"),
    [
        ("a red circle", "a red circle", 0),
        ("a blue circle", "a red circle", 1),  # substitution
        ("a big red circle", "a red circle", 1),  # insertion
        ("a circle", "a red circle", 1),  # deletion
        ("circle red a", "a red circle", 2),  # two substitutions beat delete + insert (4)
        ("", "a red circle", 3),
        ("the small square is above", "a small square above", 2),  # sub the->a, delete "is"
    ],
)
def test_word_error_rate_counts_edits(hypothesis: str, reference: str, edits: int) -> None:
    assert word_error_rate([hypothesis], [reference]) == pytest.approx(
        edits / len(reference.split())
    )


def test_word_error_rate_pools_over_the_corpus() -> None:
    hypotheses = ["A blue circle.", "a circle", "is there a big star"]
    references = ["a red circle", "a red circle", "is there a star"]
    # 1 substitution + 1 deletion + 1 insertion over 3 + 3 + 4 reference words
    assert word_error_rate(hypotheses, references) == pytest.approx(3 / 10)
    assert word_error_rate(["a b c d e f"], ["x"]) == pytest.approx(6.0)  # may exceed 1
    with pytest.raises(ValueError, match="no words"):
        word_error_rate([""], [""])


# ---------------------------------------------------------------- parsing and attributes


def test_parse_caption_inverts_each_template_shape() -> None:
    parsed = parse_caption(
        "a large yellow hexagon to the left of a large orange square, "
        "and a small red circle to the right of it"
    )
    assert parsed == ParsedCaption(
        objects=(
            ParsedObject("large", "yellow", "hexagon"),
            ParsedObject("large", "orange", "square"),
            ParsedObject("small", "red", "circle"),
        ),
        relations=(ParsedRelation(0, "left of", 1), ParsedRelation(2, "right of", 1)),
    )
    parsed = parse_caption("a large green diamond with a small red hexagon above it")
    assert parsed.relations == (ParsedRelation(1, "above", 0),)
    parsed = parse_caption("a blue star with a red circle below it and a green square left of it")
    assert parsed.relations == (ParsedRelation(1, "below", 0), ParsedRelation(2, "left of", 0))
    parsed = parse_caption("a single small white star on a plain background")
    assert parsed == ParsedCaption((ParsedObject("small", "white", "star"),), ())


def test_parse_caption_tolerates_partial_and_malformed_text() -> None:
    parsed = parse_caption("red red circle above")
    assert parsed.objects == (ParsedObject(None, "red", None), ParsedObject(None, "red", "circle"))
    assert parsed.relations == ()  # a relation needs something on both sides
    assert parse_caption("above it").objects == ()
    custom = parse_caption("a tiny cyan blob", colors=["cyan"], shapes=["blob"], sizes=["tiny"])
    assert custom.objects == (ParsedObject("tiny", "cyan", "blob"),)


def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)) + "$")


def test_parser_inverts_the_generator_on_300_scenes() -> None:
    patterns = {t: _template_pattern(t) for ts in CAPTION_TEMPLATES.values() for t in ts}
    seen: set[str] = set()
    captions, scenes = [], []
    for index in range(300):
        scene = sample_scene(index, SEED)
        text = caption(scene, np.random.default_rng([SEED, index, 1]))
        graph = scene.to_dict()
        parsed = parse_caption(text, tuple(COLORS), SHAPES, tuple(SIZES))
        assert len(parsed.relations) == len(scene.objects) - 1, text
        assert all(value == 1.0 for value in attribute_accuracy(parsed, graph).values()), text
        seen |= {t for t, pattern in patterns.items() if pattern.match(text)}
        captions.append(text)
        scenes.append(graph)
    assert seen == set(patterns)  # every template was exercised
    assert all(value == 1.0 for value in caption_attribute_accuracy(captions, scenes).values())


def _two_object_scene() -> dict[str, Any]:
    """A small red circle left of a large blue square."""
    objects = (
        SceneObject("circle", "red", "small", 0.2, 0.5, 0.1, 0.0),
        SceneObject("square", "blue", "large", 0.8, 0.5, 0.16, 0.0),
    )
    return Scene(0, "train", (60, 60, 60), objects).to_dict()


def _accuracy(text: str, scene: dict[str, Any]) -> dict[str, float]:
    return attribute_accuracy(parse_caption(text), scene)


def test_wrong_captions_score_as_expected() -> None:
    scene = _two_object_scene()
    wrong_color = _accuracy("a small green circle to the left of a large blue square", scene)
    assert wrong_color["colors"] == 0.5
    assert (wrong_color["shapes"], wrong_color["sizes"], wrong_color["relations"]) == (1, 1, 1)
    assert (wrong_color["objects"], wrong_color["exact"]) == (0.5, 0.0)
    assert wrong_color["overall"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)

    wrong_relation = _accuracy("a small red circle to the right of a large blue square", scene)
    assert (wrong_relation["relations"], wrong_relation["colors"]) == (0.0, 1.0)
    inverse = _accuracy("there is a large blue square to the right of a small red circle", scene)
    assert inverse["exact"] == 1.0  # "B right of A" states "A left of B"
    circle, square = ParsedObject("small", "red", "circle"), ParsedObject("large", "blue", "square")
    both_ways = ParsedCaption(
        (circle, square), (ParsedRelation(0, "left of", 1), ParsedRelation(1, "right of", 0))
    )
    assert attribute_accuracy(both_ways, scene)["relations"] == 1.0  # one statement, restated
    contradiction = ParsedCaption(
        (circle, square), (ParsedRelation(0, "left of", 1), ParsedRelation(1, "left of", 0))
    )
    assert attribute_accuracy(contradiction, scene)["relations"] == 0.0

    no_relation = _accuracy("a small red circle and a large blue square", scene)
    assert (no_relation["relations"], no_relation["count"]) == (0.0, 1.0)
    missing = _accuracy("a small red circle", scene)
    assert (missing["colors"], missing["count"], missing["relations"]) == (0.5, 0.0, 0.0)
    unrelated = _accuracy("a large green star to the left of a small white hexagon", scene)
    # matched by size alone (large star -> large square, small hexagon -> small circle)
    assert (unrelated["colors"], unrelated["shapes"], unrelated["sizes"]) == (0.0, 0.0, 1.0)
    assert unrelated["relations"] == 0.0  # "square left of circle" is false


def test_hallucinated_objects_cost_count_and_relations() -> None:
    one = Scene(
        1, "train", (60, 60, 60), (SceneObject("star", "white", "small", 0.5, 0.5, 0.1, 0),)
    )
    scene = one.to_dict()
    extra = _accuracy("a small white star above a large red circle", scene)
    assert (extra["colors"], extra["count"], extra["relations"]) == (1.0, 0.0, 0.0)
    assert _accuracy("a small white star", scene)["exact"] == 1.0


def test_corpus_attribute_accuracy_pools_objects_and_relations() -> None:
    scene = _two_object_scene()
    single = Scene(
        1, "train", (60, 60, 60), (SceneObject("star", "white", "small", 0.5, 0.5, 0.1, 0),)
    )
    captions = ["a small green circle to the right of a large blue square", "a small white star"]
    result = caption_attribute_accuracy(captions, [scene, single.to_dict()])
    # colours: 1 of 2 + 1 of 1 = 2/3; relations: 0 of 1 judged (the single scene judges none)
    assert result["colors"] == pytest.approx(2 / 3)
    assert (result["shapes"], result["sizes"], result["relations"]) == (1.0, 1.0, 0.0)
    assert (result["count"], result["exact"]) == (1.0, 0.5)
    assert result["overall"] == pytest.approx((2 / 3 + 1 + 1 + 0) / 4)
    with pytest.raises(ValueError, match="one caption per scene"):
        caption_attribute_accuracy(captions, [scene])
