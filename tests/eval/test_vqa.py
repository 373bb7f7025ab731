"""Official VQA v2 accuracy: hand-computed cases, each normalization rule, and a transcription of
the official evaluation's loop (dicts, in-place edits, leave-one-out by dict inequality)."""

from __future__ import annotations

import random
import re

import pytest

from trimodal.eval import vqa
from trimodal.eval.vqa import (
    AnswerScores,
    compared_answers,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
)

TEN = 10


def _punctuation(in_text: str) -> str:
    """``VQAEval.processPunctuation`` as the script writes it."""
    period_strip = re.compile(r"(?!<=\d)(\.)(?!\d)")
    comma_strip = re.compile(r"(\d)(\,)(\d)")
    out_text = in_text
    for p in vqa.PUNCTUATION:
        if (p + " " in in_text or " " + p in in_text) or (
            re.search(comma_strip, in_text) is not None
        ):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    return period_strip.sub("", out_text, re.UNICODE)


def _digit_article(in_text: str) -> str:
    """``VQAEval.processDigitArticle`` as the script writes it."""
    manual_map = dict(vqa.NUMBER_WORDS)
    out = []
    for word in in_text.lower().split():
        word = manual_map.setdefault(word, word)
        if word not in vqa.ARTICLES:
            out.append(word)
    for i, word in enumerate(out):
        if word in vqa.CONTRACTIONS:
            out[i] = vqa.CONTRACTIONS[word]
    return " ".join(out)


def official_loop(prediction: str, human_answers: list[str], rules: str) -> float:
    """One question of ``VQAEval.evaluate``, in the release ``rules`` names, written as that
    script does it: dicts edited in place, leave-one-out by dict inequality."""
    gts = [{"answer": a, "answer_id": i + 1} for i, a in enumerate(human_answers)]
    if rules == "official":
        for ans in gts:
            ans["answer"] = ans["answer"].replace("\n", " ").replace("\t", " ").strip()
    res = prediction.replace("\n", " ").replace("\t", " ").strip()
    if rules == "2017":
        res = _digit_article(_punctuation(res))
    if len({a["answer"] for a in gts}) > 1:
        for ans in gts:
            ans["answer"] = _punctuation(str(ans["answer"]))
            if rules == "official":
                ans["answer"] = _digit_article(str(ans["answer"]))
        if rules == "official":
            res = _digit_article(_punctuation(res))
    accuracies = []
    for datum in gts:
        others = [item for item in gts if item != datum]
        matching = [item for item in others if item["answer"] == res]
        accuracies.append(min(1, float(len(matching)) / 3))
    return sum(accuracies) / len(accuracies)


# ---------------------------------------------------------------------------------------------
# hand-computed


def test_number_word_prediction_against_digit_humans() -> None:
    humans = ["2"] * 6 + ["two"] * 2 + ["3"] * 2
    assert vqa_accuracy("two", humans) == 1.0  # "two" -> "2", six humans said "2"
    assert vqa_accuracy("Two", humans) == 1.0
    # "3" matches 2 humans: 8 subsets keep both (2/3), 2 subsets keep one (1/3)
    assert vqa_accuracy("3", humans) == pytest.approx((8 * 2 / 3 + 2 * 1 / 3) / TEN)
    assert vqa_accuracy("4", humans) == 0.0


@pytest.mark.parametrize(
    ("matching", "expected"),
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_matching_humans_give_the_published_steps(matching: int, expected: float) -> None:
    # m matches of 10: (10 - m) subsets see m, m subsets see m - 1
    humans = ["kitchen"] * matching + ["bathroom"] * (TEN - matching)
    assert vqa_accuracy("kitchen", humans) == pytest.approx(expected)


def test_article_punctuation_and_case_variants_when_humans_disagree() -> None:
    for rules in ("official", "2017"):
        assert vqa_accuracy("the kitchen", ["kitchen"] * 9 + ["room"], rules) == 1.0
        assert vqa_accuracy("Yes!", ["yes"] * 9 + ["no"], rules) == 1.0
        assert vqa_accuracy("  yes.\n", ["yes"] * 9 + ["no"], rules) == 1.0
        assert vqa_accuracy("an apple", ["apple"] * 3 + ["banana"] * 7, rules) == pytest.approx(0.9)
        assert vqa_accuracy("dont know", ["don't know"] * 5 + ["no"] * 5, rules) == 1.0


def test_when_all_humans_agree_the_current_script_normalizes_nothing() -> None:
    # GT-Vision-Lab/VQA a013f00: no normalization at all, so only the stripped string counts
    assert vqa_accuracy("the kitchen", ["kitchen"] * TEN) == 0.0
    assert vqa_accuracy("Yes!", ["yes"] * TEN) == 0.0
    assert vqa_accuracy(" yes\n", ["yes"] * TEN) == 1.0
    # the 2017 release normalizes the prediction always
    assert vqa_accuracy("the kitchen", ["kitchen"] * TEN, "2017") == 1.0
    assert vqa_accuracy("Yes!", ["yes"] * TEN, "2017") == 1.0
    # ... but never the humans beyond punctuation: upper-case humans are never matched, and
    # the humans' answers are not even stripped
    assert vqa_accuracy("Yes", ["Yes"] * TEN, "2017") == 0.0
    assert vqa_accuracy("yes", ["yes "] * TEN, "2017") == 0.0
    assert vqa_accuracy("yes", ["yes "] * TEN) == 1.0


def test_the_two_releases_differ_on_number_words_among_humans() -> None:
    humans = ["2"] * 2 + ["two"] * 2 + ["3"] * 6
    # current script: the humans' "two" becomes "2", so "2" matches 4 humans
    assert vqa_accuracy("2", humans) == 1.0
    # 2017 release: humans only get punctuation, "2" matches 2 of them
    assert vqa_accuracy("2", humans, "2017") == pytest.approx(0.6)
    assert compared_answers("Two", humans, "2017") == ("2", humans)
    with pytest.raises(ValueError, match="rules must be"):
        vqa_accuracy("2", humans, "2019")  # type: ignore[arg-type]


def test_a_constant_answer_cannot_score_well() -> None:
    questions = [["yes"] * TEN, ["no"] * TEN, ["2"] * 7 + ["3"] * 3, ["red"] * 10]
    scores = [vqa_accuracy("yes", humans) for humans in questions]
    assert sum(scores) / len(scores) == pytest.approx(0.25)


def test_no_human_answers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one human answer"):
        vqa_accuracy("yes", [])


# ---------------------------------------------------------------------------------------------
# each rule on its own


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("black-and-white", "black and white"),  # no mark touches a space: marks become spaces
        ("t - shirt", "t  shirt"),  # "-" touches a space: deleted
        ("1,000", "1000"),  # digit-comma-digit: every mark is deleted
        ("red, white", "red white"),
        ("a,b", "a b"),
        ("2.5", "2.5"),  # a period before a digit stays
        ("yes.", "yes"),
        ("(left)", " left "),
        ('"stop"', " stop "),
        ("hot dog?", "hot dog "),
        ("what's", "what's"),  # apostrophes are not in the list
        ("a/b", "a b"),
        ("a_b", "a b"),
        ("@home", " home"),
    ],
)
def test_punctuation_rule(text: str, expected: str) -> None:
    assert process_punctuation(text) == expected


def test_at_most_32_periods_are_removed() -> None:
    assert process_punctuation("." * 40) == "." * 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("zero", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),  # the official table stops at ten
        ("the dog", "dog"),
        ("a dog", "dog"),
        ("an owl", "owl"),
        ("the  two   cats", "2 cats"),
        ("dont", "don't"),
        ("isnt", "isn't"),
        ("wont", "won't"),
        ("Im", "im"),  # the table's capitalized keys never match after lower-casing
        ("somebody'd", "somebodyd"),  # an entry of the official table, kept as it is
    ],
)
def test_digit_article_rule(text: str, expected: str) -> None:
    assert process_digit_article(text) == expected


def test_newlines_and_tabs_become_spaces() -> None:
    assert compared_answers("\tthe\nkitchen \n", ["kitchen", "room"]) == (
        "kitchen",
        ["kitchen", "room"],
    )
    assert normalize_answer("the two  dogs.") == "2 dogs"


# ---------------------------------------------------------------------------------------------
# the official loop


def test_matches_the_official_loops_on_random_questions() -> None:
    vocabulary = ["2", "two", "Two", "3", "yes", "yes!", "Yes", "no", "the kitchen", "kitchen"]
    vocabulary += ["black-and-white", "black and white", "1,000", "1000", "t-shirt", "dont"]
    vocabulary += ["don't", "red.", "red", "an apple", "apple", "2.5", "(left)", "left"]
    vocabulary += ["yes ", " no", "two\n"]
    generator = random.Random(0)
    for _ in range(2000):
        humans = [generator.choice(vocabulary) for _ in range(generator.choice((1, 3, 10)))]
        if generator.random() < 0.2:
            humans = [humans[0]] * len(humans)
        prediction = generator.choice(vocabulary)
        for rules in ("official", "2017"):
            assert vqa_accuracy(prediction, humans, rules) == pytest.approx(
                official_loop(prediction, humans, rules), abs=1e-12
            )


def test_answer_scores_table() -> None:
    scores = AnswerScores()
    scores.add(("typed", "typed/number"), True, "2", ["2"] * 6 + ["two"] * 2 + ["3"] * 2)
    scores.add(("typed", "typed/number"), False, "3", ["2"] * 6 + ["two"] * 2 + ["3"] * 2)
    scores.add(("typed", "typed/color"), True, "red", [])
    table = scores.table()
    assert table["typed/number"] == pytest.approx(
        {"accuracy": 0.8, "exact_match": 0.5, "count": 2, "metric": "vqa"}
        | {"vqa_accuracy": 0.8, "vqa_count": 2}
    )
    assert table["typed/color"] == {
        "accuracy": 1.0,
        "exact_match": 1.0,
        "count": 1,
        "metric": "exact_match",
    }
    # a mixed group's headline stays exact match; the official score covers its humans' part
    assert table["typed"]["metric"] == "exact_match"
    assert table["typed"]["accuracy"] == pytest.approx(2 / 3)
    assert table["typed"]["vqa_accuracy"] == pytest.approx(0.8)
    assert table["typed"]["vqa_count"] == 2
