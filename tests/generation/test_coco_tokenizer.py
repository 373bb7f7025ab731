"""coco_tokenize: each Penn Treebank rule by hand, the world's captions, and the real Java
tokenizer of pycocoevalcap wherever Java is installed."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest

from tests.generation.test_metrics import PARITY_CANDIDATES, PARITY_REFERENCES, SEED
from trimodal.generation.coco_tokenizer import coco_tokenize
from trimodal.generation.metrics import tokenize_caption
from trimodal.world.language import caption
from trimodal.world.scene import sample_scene

# ---------------------------------------------------------------- COCO tokenization

# Each rule on its own; expected tokens written by hand from CoreNLP 3.4.1's PTBLexer rules and
# pycocoevalcap's punctuation filter (the Java test below confirms them when java is present).
COCO_TOKENIZATION_CASES = [
    # hyphenated compounds stay whole
    ("A well-known dog", ["a", "well-known", "dog"]),
    ("a 12-year-old boy on a x-ray", ["a", "12-year-old", "boy", "on", "a", "x-ray"]),
    # numbers keep inner ":" "," "."
    ("a clock showing 3:45", ["a", "clock", "showing", "3:45"]),
    ("1,000 birds and 2.5 cats", ["1,000", "birds", "and", "2.5", "cats"]),
    # clitics split as in the Penn Treebank
    ("the dog's bowl", ["the", "dog", "'s", "bowl"]),
    ("a dog that doesn't bark", ["a", "dog", "that", "does", "n't", "bark"]),
    ("I don't know", ["i", "do", "n't", "know"]),
    ("it can't fly", ["it", "ca", "n't", "fly"]),
    ("they're here", ["they", "'re", "here"]),
    ("I'll go", ["i", "'ll", "go"]),
    ("we've seen", ["we", "'ve", "seen"]),
    ("I'd say", ["i", "'d", "say"]),
    ("I'm fine", ["i", "'m", "fine"]),
    ("the dogs' toys", ["the", "dogs", "toys"]),  # the lone quote is punctuation
    ("it cannot fly", ["it", "can", "not", "fly"]),
    ("at ten o'clock", ["at", "ten", "o'clock"]),
    # a trailing period, commas and other punctuation are separated, then dropped
    ("A man riding a horse.", ["a", "man", "riding", "a", "horse"]),
    (
        "a cat, a dog, and a bird; all asleep:",
        ["a", "cat", "a", "dog", "and", "a", "bird", "all", "asleep"],
    ),
    ("Is it a dog? Yes!", ["is", "it", "a", "dog", "yes"]),
    ("a dog -- or a wolf - running", ["a", "dog", "or", "a", "wolf", "running"]),
    # quotes of every kind become `` '' ` ' and are dropped
    ('a sign that says "stop"', ["a", "sign", "that", "says", "stop"]),
    ("a 'vintage' car", ["a", "vintage", "car"]),
    ("a \u201ccurly\u201d and \u2018single\u2019 quote", ["a", "curly", "and", "single", "quote"]),
    # brackets become -LRB- / -RRB-; pycocoevalcap's filter names them in upper case but
    # compares lowercased tokens, so the official toolkit keeps them
    ("a dog (a puppy) sleeps", ["a", "dog", "-lrb-", "a", "puppy", "-rrb-", "sleeps"]),
    ("a [red] bus", ["a", "-lsb-", "red", "-rsb-", "bus"]),
    # ellipses (three or more dots, or the Unicode one) are one token, dropped
    ("a dog... sleeping", ["a", "dog", "sleeping"]),
    ("a dog\u2026 sleeping", ["a", "dog", "sleeping"]),
    # lowercasing happens after tokenizing
    ("A LARGE Red Bus", ["a", "large", "red", "bus"]),
    # symbols stay, with PTB's rewrites
    ("a $5 bill & 50% off", ["a", "$", "5", "bill", "&", "50", "%", "off"]),
    ("1 1/2 cups", ["1", "1/2", "cups"]),  # FRAC joins with a no-break space; split() splits
    ("a \u00bd cup", ["a", "1/2", "cup"]),
    ("Mr. Smith at St. Louis", ["mr.", "smith", "at", "st.", "louis"]),  # abbreviations
    ("a T.V. on a stand", ["a", "t.v.", "on", "a", "stand"]),
    ("what?!", ["what", "?!"]),  # only a lone ? or ! is in the punctuation list
]


@pytest.mark.parametrize(("text", "expected"), COCO_TOKENIZATION_CASES)
def test_coco_tokenize_follows_each_ptb_rule(text: str, expected: list[str]) -> None:
    assert coco_tokenize(text) == expected


def test_coco_tokenize_replaces_newlines_and_handles_empty_text() -> None:
    assert coco_tokenize("a dog\nsleeping.") == ["a", "dog", "sleeping"]
    assert coco_tokenize("") == []
    assert coco_tokenize(" . , ") == []


def test_coco_tokenize_equals_the_world_tokenizer_on_world_captions() -> None:
    """World captions are lowercase words, spaces and commas: both tokenizers agree, so the
    switch of BLEU's and CIDEr-D's default tokenizer leaves the world's scores unchanged."""
    for index in range(300):
        text = caption(sample_scene(index, SEED), np.random.default_rng([SEED, index]))
        assert coco_tokenize(text) == tokenize_caption(text), text


def realistic_captions(count: int, seed: int) -> list[str]:
    """COCO-like captions mixing clitics, hyphens, numbers, brackets, quotes and end marks."""
    generator = random.Random(seed)
    subjects = ["A man", "a woman's", "Two dogs", "The cat", "A 12-year-old boy", "People"]
    subjects += ["A well-dressed man", "A child's", "The U.S. flag", "Mr. Smith", "A T.V."]
    verbs = ["is riding", "isn't riding", "can't see", "won't eat", "they're holding", "has"]
    verbs += ["'s sitting on", "stands beside", "don't like", "I'd say is on", "cannot see"]
    objects = ["a horse", "a hot-dog", "a 10-speed bike", "pizza (pepperoni)", "a [red] frisbee"]
    objects += ['some "fancy" food', "a 'vintage' car", "the dogs' toys", "a clock at 3:45"]
    objects += ["1,000 birds", "2.5 slices", "an x-ray", "his/her phone", "a $5 bill", "50%"]
    objects += ["a plate & fork", "St. Louis", "a No. 5 bus", "fruit; apples", "it\u2019s shadow"]
    objects += ["a \u201ccurly\u201d quote", "\u00bd a cake", "a plate etc."]
    ends = [".", "", " .", "!", "?", "...", " \u2026", ",", "!!", "?!", " - ok", " -- really"]
    captions = []
    for _ in range(count):
        parts = [generator.choice(subjects), generator.choice(verbs), generator.choice(objects)]
        if generator.random() < 0.3:
            parts += [generator.choice(["and", ",", "while"]), generator.choice(objects)]
        text = " ".join(parts) + generator.choice(ends)
        if generator.random() < 0.2:
            text = text.upper() if generator.random() < 0.3 else text.lower()
        captions.append(text)
    return captions


def test_coco_tokenize_on_realistic_captions_by_hand() -> None:
    assert coco_tokenize("A child's hot-dog isn't (really) \u201cfancy\u201d...") == [
        "a", "child", "'s", "hot-dog", "is", "n't", "-lrb-", "really", "-rrb-", "fancy"
    ]  # fmt: skip
    assert coco_tokenize("Two dogs won't eat \u00bd a cake?!") == [
        "two", "dogs", "wo", "n't", "eat", "1/2", "a", "cake", "?!"
    ]  # fmt: skip
    assert coco_tokenize("it\u2019s 3:45 at St. Louis, a $5 bill & 50%.") == [
        "it", "'s", "3:45", "at", "st.", "louis", "a", "$", "5", "bill", "&", "50", "%"
    ]  # fmt: skip


def test_a_single_letter_keeps_its_period_inside_a_caption_only() -> None:
    assert coco_tokenize("letter b. is here") == ["letter", "b.", "is", "here"]
    assert coco_tokenize("the letter b.") == ["the", "letter", "b"]


@pytest.mark.skipif(
    shutil.which("java") is None,
    reason="java is not on PATH: pycocoevalcap's "
    "PTBTokenizer runs Stanford CoreNLP's Java tokenizer",
)
def test_coco_tokenize_equals_pycocoevalcap_ptbtokenizer() -> None:
    ptb = pytest.importorskip("pycocoevalcap.tokenizer.ptbtokenizer")
    if not os.access(os.path.dirname(ptb.__file__), os.W_OK):
        pytest.skip("pycocoevalcap writes its temporary input beside the jar, not writable here")
    texts = [text for text, _ in COCO_TOKENIZATION_CASES]
    texts += PARITY_CANDIDATES + [ref for refs in PARITY_REFERENCES for ref in refs]
    texts += realistic_captions(1000, seed=7)
    # one caption per "image", in order: the Java tokenizer reads them as consecutive lines
    tokenized = ptb.PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    mismatches = [
        (text, tokenized[i][0].split(), coco_tokenize(text))
        for i, text in enumerate(texts)
        if tokenized[i][0].split() != coco_tokenize(text)
    ]
    assert not mismatches
