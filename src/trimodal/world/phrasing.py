"""Many ways to say the same thing: a small grammar of question and caption forms.

Every question the world asks is first generated in its *canonical* form (``"what color is the
star?"``) by :mod:`trimodal.world.language`; :func:`rephrase` parses that form into its slots
(the object phrases, a colour, a relation) and says it again in another form with the same
content words and the same answer — sometimes with the objects in the other order ("is the
circle bigger than the star?" -> "is the star smaller than the circle?"). Captions get their
own template banks per object count.

Forms come in two disjoint banks: ``train`` (what a training world may use) and ``heldout``
(kept out of every training world, to measure whether a model learned the language or the
templates). A world picks its phrasing with ``WorldConfig.phrasing``:

- ``canonical``: one form per question, the four caption templates (the default world),
- ``varied``: the canonical form or a ``train`` form, drawn per question and caption,
- ``heldout``: a ``heldout`` form always.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from trimodal.world.language import OPPOSITE, RELATION_WORDS, Question

PHRASINGS: tuple[str, ...] = ("canonical", "varied", "heldout")

_WORDS_RELATION = {words: name for name, words in RELATION_WORDS.items()}


@dataclass(frozen=True)
class QuestionForm:
    """A canonical question's shape: the regex that parses it into slots and the two banks of
    forms that say it again (``{x}`` slots filled from the parse, plus the derived ``{rev}``:
    the opposite relation, for forms that swap the two objects)."""

    pattern: re.Pattern[str]
    train: tuple[str, ...]
    heldout: tuple[str, ...]


def _form(pattern: str, train: tuple[str, ...], heldout: tuple[str, ...]) -> QuestionForm:
    return QuestionForm(re.compile(f"^{pattern}$"), train, heldout)


_OBJ = r"(?P<{}>[a-z ]+?)"
_A, _B = _OBJ.format("a"), _OBJ.format("b")
_REL = "(?P<rel>" + "|".join(re.escape(w) for w in RELATION_WORDS.values()) + ")"

QUESTION_FORMS: dict[str, QuestionForm] = {
    "color": _form(
        rf"what color is the {_A}\?",
        (
            "what colour is the {a}?",
            "which color is the {a}?",
            "what is the color of the {a}?",
            "the {a} is what color?",
            "tell me the color of the {a}",
        ),
        (
            "which colour does the {a} have?",
            "name the colour of the {a}",
            "what colour has the {a} got?",
        ),
    ),
    "shape": _form(
        rf"what shape is the {_A}\?",
        (
            "which shape is the {a}?",
            "what is the shape of the {a}?",
            "the {a} has what shape?",
            "tell me the shape of the {a}",
        ),
        (
            "what kind of shape is the {a}?",
            "name the shape of the {a}",
            "which form does the {a} take?",
        ),
    ),
    "size": _form(
        rf"what size is the {_A}\?",
        (
            "how big is the {a}?",
            "what is the size of the {a}?",
            "is the {a} small or large?",
            "tell me the size of the {a}",
        ),
        (
            "is the {a} large or small?",
            "how large is the {a}?",
            "which size does the {a} have?",
        ),
    ),
    "count_all": _form(
        r"how many objects are there\?",
        (
            "how many shapes are there?",
            "how many objects can you see?",
            "what is the number of objects?",
            "how many things are in the picture?",
        ),
        (
            "count the objects",
            "how many objects does the picture show?",
            "what number of shapes is shown?",
        ),
    ),
    "count_color": _form(
        r"how many (?P<c>[a-z]+) objects are there\?",
        (
            "how many {c} shapes are there?",
            "how many {c} objects can you see?",
            "what is the number of {c} objects?",
        ),
        (
            "count the {c} objects",
            "how many objects are {c}?",
            "how many {c} things does the picture show?",
        ),
    ),
    "count_shape": _form(
        r"how many (?P<p>[a-z]+) are there\?",
        (
            "how many {p} can you see?",
            "what is the number of {p}?",
            "how many {p} are in the picture?",
        ),
        (
            "count the {p}",
            "how many {p} does the picture show?",
            "what number of {p} is shown?",
        ),
    ),
    "exist": _form(
        r"is there a (?P<c>[a-z]+) (?P<s>[a-z]+)\?",
        (
            "is there any {c} {s}?",
            "can you see a {c} {s}?",
            "does the picture contain a {c} {s}?",
            "is a {c} {s} present?",
        ),
        (
            "do you see a {c} {s} anywhere?",
            "does the picture show a {c} {s}?",
            "is a {c} {s} in the picture?",
        ),
    ),
    "relation": _form(
        rf"is the {_A} {_REL} the {_B}\?",
        (
            "is the {b} {rev} the {a}?",
            "is the {a} located {rel} the {b}?",
            "would you say the {a} is {rel} the {b}?",
        ),
        (
            "is the {b} placed {rev} the {a}?",
            "does the {a} sit {rel} the {b}?",
            "is it true that the {a} is {rel} the {b}?",
        ),
    ),
    "bigger": _form(
        rf"is the {_A} bigger than the {_B}\?",
        (
            "is the {b} smaller than the {a}?",
            "is the {a} larger than the {b}?",
            "is the {a} the bigger one, compared with the {b}?",
        ),
        (
            "does the {a} look bigger than the {b}?",
            "is the {b} tinier than the {a}?",
            "compared with the {b}, is the {a} larger?",
        ),
    ),
    "smaller": _form(
        rf"is the {_A} smaller than the {_B}\?",
        (
            "is the {b} bigger than the {a}?",
            "is the {a} tinier than the {b}?",
            "is the {a} the smaller one, compared with the {b}?",
        ),
        (
            "does the {a} look smaller than the {b}?",
            "is the {b} larger than the {a}?",
            "compared with the {b}, is the {a} smaller?",
        ),
    ),
    "same_size": _form(
        rf"are the {_A} and the {_B} the same size\?",
        (
            "are the {b} and the {a} the same size?",
            "do the {a} and the {b} have the same size?",
            "is the {a} as big as the {b}?",
        ),
        (
            "are the {a} and the {b} equally big?",
            "do the {b} and the {a} match in size?",
            "is the {b} the same size as the {a}?",
        ),
    ),
}
"""Every canonical question shape the world's families produce, by name."""

CAPTION_FORMS: dict[int, dict[str, tuple[str, ...]]] = {
    1: {
        "train": (
            "an image of a {a}",
            "a {a} is shown",
            "one {a} on the background",
            "this picture shows a {a}",
        ),
        "heldout": ("here we see a {a}", "a lone {a}", "the image contains a {a}"),
    },
    2: {
        "train": (
            "a {a} is {ab} a {b}",
            "an image of a {a} {ab} a {b}",
            "{ab} a {b} there is a {a}",
            "this picture shows a {b} and a {a} {ab} it",
        ),
        "heldout": (
            "here we see a {a} placed {ab} a {b}",
            "a {b}, with a {a} sitting {ab} it",
            "the image contains a {b} and a {a} {ab} it",
        ),
    },
    3: {
        "train": (
            "a {a} is {ab} a {b} and a {c} is {cb} it",
            "an image of a {a} {ab} a {b} and a {c} {cb} it",
            "{ab} a {b} there is a {a}, and {cb} it a {c}",
            "this picture shows a {b} with a {a} {ab} it and a {c} {cb} it",
        ),
        "heldout": (
            "here we see a {a} placed {ab} a {b}, and a {c} {cb} it",
            "a {b}, with a {a} sitting {ab} it and a {c} sitting {cb} it",
            "the image contains a {b}; a {a} is {ab} it and a {c} is {cb} it",
        ),
    },
}
"""Caption templates beyond :data:`~trimodal.world.language.CAPTION_TEMPLATES`, per object
count, in the two banks (slots as there: ``a``, ``b``, ``c``, ``ab``, ``cb``)."""


def parse(text: str) -> tuple[str, dict[str, str]] | None:
    """The canonical form ``text`` is in and its slots, or None (a form this grammar lacks)."""
    for name, form in QUESTION_FORMS.items():
        match = form.pattern.match(text)
        if match:
            return name, match.groupdict()
    return None


def _fill(template: str, slots: dict[str, str]) -> str:
    values = dict(slots)
    if "rel" in slots:
        values["rev"] = RELATION_WORDS[OPPOSITE[_WORDS_RELATION[slots["rel"]]]]
    return template.format(**values)


def question_forms(question: Question, bank: str) -> list[str]:
    """Every way ``bank`` (``train`` or ``heldout``) says ``question``; empty when the grammar
    has no form for it (motion questions, converted datasets' questions)."""
    parsed = parse(question.question)
    if parsed is None:
        return []
    name, slots = parsed
    form = QUESTION_FORMS[name]
    return [_fill(t, slots) for t in (form.train if bank == "train" else form.heldout)]


def rephrase(question: Question, phrasing: str, rng: np.random.Generator) -> Question:
    """``question`` said as ``phrasing`` wants (see the module docstring); the answer and the
    family stay. A question without forms keeps its text."""
    check_phrasing(phrasing)
    if phrasing == "canonical":
        return question
    bank = "heldout" if phrasing == "heldout" else "train"
    forms = question_forms(question, bank)
    choices = forms if phrasing == "heldout" else [question.question, *forms]
    if not choices:
        return question
    return replace(question, question=choices[int(rng.integers(len(choices)))])


def caption_templates(count: int, phrasing: str, canonical: tuple[str, ...]) -> tuple[str, ...]:
    """The caption templates a ``phrasing`` world draws from for scenes of ``count`` objects
    (``canonical``: the default world's)."""
    check_phrasing(phrasing)
    if phrasing == "canonical":
        return canonical
    if phrasing == "heldout":
        return CAPTION_FORMS[count]["heldout"]
    return canonical + CAPTION_FORMS[count]["train"]


def check_phrasing(phrasing: str) -> None:
    """A clear error for an unknown phrasing."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
