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
from trimodal.generation.metrics import (
    bleu,
    cider_d,
    coco_tokenize,
    tokenize_caption,
    word_error_rate,
)
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


def test_bleu_and_cider_d_take_the_world_tokenizer_by_keyword() -> None:
    candidates = ["a well-known dog isn't asleep", "a red bus on a street"]
    references = [["a well known dog isn t asleep"], ["a red bus on a street"]]
    # the world's tokenizer splits "well-known" and "isn't" as the references spell them
    assert bleu(candidates, references, tokenize=tokenize_caption) == pytest.approx(1.0)
    assert cider_d(candidates, references, tokenize=tokenize_caption) == pytest.approx(10.0)
    # COCO's keeps "well-known" whole and splits "is n't": the first candidate no longer matches
    assert bleu(candidates, references) < 1.0
    assert cider_d(candidates, references) < 10.0


# ---------------------------------------------------------------- parity with pycocoevalcap

# 22 images x 5 references, COCO-like: varied lengths, punctuation, hyphens and clitics.
PARITY_REFERENCES = [
    [
        "A man riding a wave on top of a surfboard.",
        "A surfer rides a large wave in the ocean.",
        "a man on a surfboard riding a wave",
        "A person in a black wet-suit surfing a big wave.",
        "The surfer's board cuts through the white water.",
    ],
    [
        "Two dogs playing with a frisbee in a grassy field.",
        "A pair of dogs chase a red frisbee on the grass.",
        "two dogs running after a frisbee",
        "Dogs play in a park, one holding a frisbee.",
        "A black dog and a brown dog fight over a toy.",
    ],
    [
        "A kitchen with white cabinets and a stainless-steel refrigerator.",
        "A clean kitchen with a fridge, a stove and a sink.",
        "the kitchen has white cupboards and a silver fridge",
        "An empty kitchen with wooden floors.",
        "A modern kitchen; the appliances are stainless steel.",
    ],
    [
        "A red double-decker bus driving down a city street.",
        "A double decker bus on a busy road.",
        "a red bus drives past tall buildings",
        "A big red bus is stopped at a traffic light.",
        "The bus is carrying passengers through the city.",
    ],
    [
        "A plate of food with broccoli, rice and chicken.",
        "A dinner plate holds chicken, rice, and green broccoli.",
        "a meal of rice and vegetables on a white plate",
        "Someone's lunch: chicken with broccoli and rice.",
        "A healthy meal is served on a round plate.",
    ],
    [
        "A giraffe standing next to a tall tree.",
        "A giraffe eats leaves from the top of a tree.",
        "a tall giraffe in a zoo enclosure",
        "The giraffe's long neck reaches the branches.",
        "One giraffe stands alone near some trees.",
    ],
    [
        "A woman holding an umbrella in the rain.",
        "A lady with a black umbrella walks down a wet street.",
        "a woman walking in the rain with an umbrella",
        "A person shields herself from the rain with an umbrella.",
        "It's raining, and a woman carries an umbrella.",
    ],
    [
        "A little girl eating a slice of pizza.",
        "A young girl takes a bite of cheese pizza.",
        "a child eating pizza at a table",
        "The girl doesn't seem to like her pizza.",
        "A kid holds a large slice of pepperoni pizza.",
    ],
    [
        "A train traveling down tracks next to a forest.",
        "A long freight train moves along the railroad tracks.",
        "a train on the tracks near some trees",
        "A passenger train passes through the countryside.",
        "The train's engine is painted yellow and blue.",
    ],
    [
        "A cat sleeping on top of a laptop keyboard.",
        "A gray cat lies on a laptop computer.",
        "a cat curled up on a keyboard",
        "The cat's asleep on the owner's laptop.",
        "A lazy cat naps on an open laptop.",
    ],
    [
        "A group of people flying kites on a beach.",
        "People fly colorful kites at the beach on a windy day.",
        "several kites in the sky above the sand",
        "Kite-flyers gather by the ocean.",
        "A crowd on the beach watches kites in the air.",
    ],
    [
        "A baseball player swinging a bat at a ball.",
        "A batter swings at a pitch during a baseball game.",
        "a baseball player at home plate",
        "The batter is about to hit the ball, while the catcher waits.",
        "A player in a white uniform swings his bat.",
    ],
    [
        "A bathroom with a toilet, a sink and a mirror.",
        "A small bathroom with white tiles.",
        "a white toilet next to a sink",
        "The bathroom's walls are painted light-blue.",
        "A clean restroom with a toilet and a shower.",
    ],
    [
        "An elephant walking through tall grass.",
        "A large elephant walks in a grassy field.",
        "an elephant in the wild",
        "The elephant is walking toward the water (a small pond).",
        "A gray elephant roams the savanna.",
    ],
    [
        "A man in a suit and tie standing in a room.",
        "A businessman wearing a blue tie poses for a photo.",
        "a man wearing a tie",
        "A well-dressed man stands near a window.",
        "The man's tie is red and his suit is black.",
    ],
    [
        "A bowl of fruit with bananas, apples and oranges.",
        "Fresh fruit sits in a wooden bowl on the table.",
        "a fruit bowl full of bananas",
        "Bananas and apples are piled in a bowl.",
        "A bowl holds several kinds of fruit.",
    ],
    [
        "A skateboarder doing a trick on a ramp.",
        "A young man performs a jump on his skateboard.",
        "a boy skateboarding at a skate park",
        "The skater's in mid-air above the ramp.",
        "A skateboarder grinds along a metal rail.",
    ],
    [
        "A clock tower with a large clock showing 3:45.",
        "A tall tower has a clock on each side.",
        "a clock on a brick tower",
        "The clock reads a quarter to four.",
        "An old clock tower against a cloudy sky.",
    ],
    [
        "Two zebras grazing in a field.",
        "A couple of zebras eat grass on the plain.",
        "two zebras standing in the grass",
        "Zebras graze side-by-side near some bushes.",
        "A pair of zebras with their heads down.",
    ],
    [
        "A living room with a couch and a television.",
        "A cozy living room has a sofa, a TV and a rug.",
        "a couch in front of a tv",
        "The living room's furniture is brown leather.",
        "A family room with a flat-screen television.",
    ],
    [
        "A boat docked at a pier on a calm lake.",
        "Small boats are tied to a wooden dock.",
        "a boat in the water next to a dock",
        "A white sailboat sits at the marina.",
        "The boats aren't moving on the still water.",
    ],
    [
        "A snowboarder going down a snowy slope.",
        "A person snowboards down a mountain.",
        "a snowboarder on a hill covered in snow",
        "The snowboarder's jacket is bright orange.",
        "Someone rides a snowboard through fresh powder.",
    ],
]

PARITY_CANDIDATES = [
    "A man riding a wave on top of a surfboard.",  # perfect: equals a reference
    "Two dogs are playing with a frisbee in the grass.",
    "A kitchen with a refrigerator and a stove.",
    "A red double-decker bus on a city street.",
    "A plate of rice, chicken and broccoli.",
    "A giraffe standing next to a tree.",
    "A woman walks in the rain with an umbrella.",
    "A girl eating a slice of pizza.",
    "A train on the tracks.",
    "A cat sleeping on a laptop keyboard.",
    "A group of people flying kites on a beach.",  # perfect
    "A man playing tennis on a court.",  # poor: wrong sport
    "A bathroom with a toilet and a sink.",
    "An elephant walking in the grass.",
    "A man wearing a suit and tie.",
    "A bowl of bananas and apples.",
    "A skateboarder doing a trick.",
    "A clock tower showing 3:45.",
    "A plate of food on a table.",  # poor: another image's caption
    "A living room with a couch and a TV.",
    "A boat at a dock on a lake.",
    "A snowboarder isn't going down a snowy slope.",
]


def _coco_inputs(
    candidates: list[str], references: list[list[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """pycocoevalcap's ``gts``/``res``, pre-tokenized by ``coco_tokenize``: its own
    ``PTBTokenizer`` needs Java, which CI machines may lack, and its scorers only ``split()``."""
    gts = {i: [" ".join(coco_tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(coco_tokenize(c))] for i, c in enumerate(candidates)}
    return gts, res


def test_bleu_equals_pycocoevalcap_bleu() -> None:
    coco_bleu = pytest.importorskip("pycocoevalcap.bleu.bleu")
    gts, res = _coco_inputs(PARITY_CANDIDATES, PARITY_REFERENCES)
    scores, _ = coco_bleu.Bleu(4).compute_score(gts, res, verbose=0)
    assert 0.2 < scores[3] < 0.8  # a corpus of mixed quality, not a degenerate one
    for order in range(1, 5):  # Bleu(4) reports BLEU-1 .. BLEU-4
        ours = bleu(PARITY_CANDIDATES, PARITY_REFERENCES, n=order)
        assert abs(ours - scores[order - 1]) <= 1e-6


@pytest.mark.parametrize("sigma", [6.0, 3.0])
def test_cider_d_equals_pycocoevalcap_cider(sigma: float) -> None:
    # pycocoevalcap's Cider accepts n but always counts up to 4-grams (and fails otherwise)
    coco_cider = pytest.importorskip("pycocoevalcap.cider.cider")
    gts, res = _coco_inputs(PARITY_CANDIDATES, PARITY_REFERENCES)
    score, _ = coco_cider.Cider(sigma=sigma).compute_score(gts, res)
    assert 0.5 < score < 5.0
    ours = cider_d(PARITY_CANDIDATES, PARITY_REFERENCES, sigma=sigma)
    assert abs(ours - float(score)) <= 1e-6


def test_a_constant_caption_cannot_fool_bleu_or_cider_d() -> None:
    constant = ["a picture"] * len(PARITY_REFERENCES)
    assert bleu(constant, PARITY_REFERENCES) == 0.0  # no 3- or 4-grams at all
    assert cider_d(constant, PARITY_REFERENCES) < 0.5
    generic = ["A man standing next to a white table."] * len(PARITY_REFERENCES)
    assert bleu(generic, PARITY_REFERENCES) < 0.1
    assert cider_d(generic, PARITY_REFERENCES) < 0.5
    good = cider_d(PARITY_CANDIDATES, PARITY_REFERENCES)
    assert cider_d(generic, PARITY_REFERENCES) < good / 4


def test_pycocoevalcap_also_scores_a_constant_caption_low() -> None:
    coco_bleu = pytest.importorskip("pycocoevalcap.bleu.bleu")
    coco_cider = pytest.importorskip("pycocoevalcap.cider.cider")
    gts, res = _coco_inputs(["a picture"] * len(PARITY_REFERENCES), PARITY_REFERENCES)
    # not exactly 0: an order without n-grams contributes (0 + 1e-15) / (0 + 1e-9) there
    assert coco_bleu.Bleu(4).compute_score(gts, res, verbose=0)[0][3] < 0.01
    assert coco_cider.Cider().compute_score(gts, res)[0] < 0.5


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
