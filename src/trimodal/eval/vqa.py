"""The official VQA v2 accuracy: answer normalization and the ten leave-one-out subsets.

Follows the official evaluation script (``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of
GT-Vision-Lab/VQA) rule for rule. Two releases of that script differ in when they normalize:

- ``rules="official"`` (the repository's current script, commit a013f00, 2021, "Fixed
  processing answers bug"): the prediction and the human answers have newlines and tabs
  replaced by spaces and are stripped; **only when the humans' answers are not all identical**
  do both go through :func:`process_punctuation` then :func:`process_digit_article`
  (lower-case, number words to digits, articles dropped, contractions restored). When all
  humans agree, the stripped prediction must equal their answer exactly.
- ``rules="2017"`` (the VQA v2.0 release before that commit, the one LAVIS and many papers'
  local evaluations copy): the prediction is always normalized both ways; the human answers
  are not even stripped, and only go through :func:`process_punctuation` when they disagree.

Then, for each of the ``n`` humans, the accuracy against the other ``n - 1`` is
``min(#matching / 3, 1)``, and the question's score is the mean over the ``n`` subsets: a
prediction matching 3 or more of 10 humans scores 1.0, 2 of them 0.6, 1 of them 0.3.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

VqaRules = Literal["official", "2017"]

PUNCTUATION: tuple[str, ...] = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\")
PUNCTUATION += ("_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
# The official table, from the form without apostrophes (or with some) to the full form.
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
# The official pattern: "(?!<=\d)" is a lookahead (meant as a lookbehind), so in effect a
# period is dropped unless a digit follows it ("2.5" keeps its point, "yes." loses it).
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# The official call passes re.UNICODE (32) where sub() takes its count: at most 32 periods go.
_PERIODS_REMOVED = 32


def process_punctuation(text: str) -> str:
    """The official punctuation rule.

    Each mark of :data:`PUNCTUATION` is deleted when it touches a space somewhere in ``text``
    (or when ``text`` has a digit-comma-digit such as "1,000"), and otherwise replaced by a
    space ("black-and-white" -> "black and white", "t - shirt" -> "t  shirt"); then periods not
    followed by a digit are deleted.
    """
    out = text
    has_number_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or has_number_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PERIODS_REMOVED)


def process_digit_article(text: str) -> str:
    """Lower-case, map number words to digits, drop articles, restore contractions.

    Words are split on whitespace and re-joined with single spaces ("the  two dogs" ->
    "2 dogs", "dont" -> "don't").
    """
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    kept = [CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES]
    return " ".join(kept)


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(text: str) -> str:
    """Both normalization rules: :func:`process_punctuation` then :func:`process_digit_article`."""
    return process_digit_article(process_punctuation(text))


def compared_answers(
    prediction: str, human_answers: Sequence[str], rules: VqaRules = "official"
) -> tuple[str, list[str]]:
    """The prediction and the human answers as the chosen script compares them."""
    predicted = _clean(prediction)
    if rules == "official":
        humans = [_clean(answer) for answer in human_answers]
        if len(set(humans)) > 1:
            return normalize_answer(predicted), [normalize_answer(a) for a in humans]
        return predicted, humans
    if rules == "2017":
        humans = list(human_answers)  # this release does not strip the humans' answers
        if len(set(humans)) > 1:
            humans = [process_punctuation(answer) for answer in humans]
        return normalize_answer(predicted), humans
    raise ValueError(f"rules must be 'official' or '2017', got {rules!r}")


def vqa_accuracy(
    prediction: str, human_answers: Sequence[str], rules: VqaRules = "official"
) -> float:
    """The official VQA accuracy of one predicted answer against the humans' answers.

    Args:
        prediction: the model's answer, raw (it is normalized here).
        human_answers: the annotators' answers (ten in VQA v2), as stored in the annotation file.
        rules: which release of the official script to follow (see the module docstring).

    Returns:
        the mean over the leave-one-out subsets of ``min(#humans matching / 3, 1)``, in
        ``[0, 1]``.
    """
    if not human_answers:
        raise ValueError("VQA accuracy needs at least one human answer")
    predicted, humans = compared_answers(prediction, human_answers, rules)
    matches = sum(answer == predicted for answer in humans)
    # leaving out a matching human removes one match; leaving out another keeps them all
    subsets = [min(1.0, (matches - (answer == predicted)) / 3) for answer in humans]
    return sum(subsets) / len(subsets)


def exact_match(prediction: str, answer: str) -> bool:
    """Exact match after stripping and lower-casing (the world's single-answer accuracy)."""
    return prediction.strip().lower() == answer.strip().lower()


@dataclass
class _GroupScores:
    exact: int = 0
    count: int = 0
    official: float = 0.0
    with_humans: int = 0


@dataclass
class AnswerScores:
    """Running exact match and official VQA accuracy per group ("typed", "typed/color", ...)."""

    rules: VqaRules = "official"
    groups: dict[str, _GroupScores] = field(default_factory=lambda: defaultdict(_GroupScores))

    def add(
        self, names: Sequence[str], correct: bool, prediction: str, human_answers: Sequence[str]
    ) -> None:
        """Count one answered question in each group of ``names``.

        Args:
            correct: the exact-match verdict against the question's single reference answer.
            prediction: the answer string, scored against ``human_answers`` when there are any.
        """
        official = vqa_accuracy(prediction, human_answers, self.rules) if human_answers else None
        for name in names:
            group = self.groups[name]
            group.exact += int(correct)
            group.count += 1
            if official is not None:
                group.official += official
                group.with_humans += 1

    def table(self) -> dict[str, dict[str, Any]]:
        """Per group, sorted by name: ``exact_match``, ``count`` and ``accuracy``.

        ``accuracy`` is the official VQA accuracy when every question of the group has human
        answers (``metric: "vqa"``), else exact match (``metric: "exact_match"``); a group with
        human answers on only some questions also reports ``vqa_accuracy`` over those
        (``vqa_count``).
        """
        out: dict[str, dict[str, Any]] = {}
        for name, group in sorted(self.groups.items()):
            exact = group.exact / max(1, group.count)
            scores: dict[str, Any] = {"accuracy": exact, "exact_match": exact}
            scores |= {"count": group.count, "metric": "exact_match"}
            if group.with_humans:
                official = group.official / group.with_humans
                scores |= {"vqa_accuracy": official, "vqa_count": group.with_humans}
                if group.with_humans == group.count:
                    scores |= {"accuracy": official, "metric": "vqa"}
            out[name] = scores
        return out
