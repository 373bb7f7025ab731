"""The phrasing grammar: every canonical question parses, forms keep content and answers, and
the held-out bank is disjoint from everything a training world says."""

from __future__ import annotations

import re

import numpy as np
import pytest

from trimodal.world.language import CAPTION_TEMPLATES, Question, candidate_questions
from trimodal.world.phrasing import (
    CAPTION_FORMS,
    QUESTION_FORMS,
    caption_templates,
    parse,
    question_forms,
    rephrase,
)
from trimodal.world.scene import sample_scene

SCENES = [sample_scene(index, 0) for index in range(150)]


def _questions() -> list[Question]:
    return [q for scene in SCENES for qs in candidate_questions(scene).values() for q in qs]


def test_every_canonical_question_of_the_world_parses() -> None:
    unparsed = [q.question for q in _questions() if parse(q.question) is None]
    assert unparsed == []
    kinds = {parse(q.question)[0] for q in _questions()}  # type: ignore[index]
    assert kinds == set(QUESTION_FORMS)


def test_forms_keep_every_content_word_and_the_answer() -> None:
    rng = np.random.default_rng(0)
    for question in _questions()[::7]:
        _, slots = parse(question.question)  # type: ignore[misc]
        for bank in ("train", "heldout"):
            for text in question_forms(question, bank):
                for name, value in slots.items():
                    if name != "rel":
                        assert value in text, (question.question, text)
        again = rephrase(question, "heldout", rng)
        assert again.answer == question.answer and again.family == question.family
        assert again.question in question_forms(question, "heldout")


def test_swapped_forms_say_the_same_thing_by_hand() -> None:
    relation = Question("is the star to the left of the red circle?", "yes", "relation")
    assert question_forms(relation, "train")[0] == "is the red circle to the right of the star?"
    bigger = Question("is the star bigger than the circle?", "no", "compare")
    assert question_forms(bigger, "train")[0] == "is the circle smaller than the star?"
    above = Question("is the small square above the hexagon?", "no", "relation")
    assert question_forms(above, "heldout")[0] == "is the hexagon placed below the small square?"


def _literal(template: str) -> str:
    return re.sub(r"\{[a-z]+\}", "_", template)


def test_heldout_forms_are_disjoint_from_training_forms() -> None:
    for form in QUESTION_FORMS.values():
        canonical = _literal(form.pattern.pattern)
        train = {_literal(t) for t in form.train}
        for template in form.heldout:
            assert _literal(template) not in train
            assert _literal(template) != canonical
    for count, banks in CAPTION_FORMS.items():
        seen = {_literal(t) for t in (*CAPTION_TEMPLATES[count], *banks["train"])}
        assert not seen & {_literal(t) for t in banks["heldout"]}


def test_phrasings_choose_from_the_right_banks() -> None:
    question = Question("what color is the star?", "red", "color")
    assert rephrase(question, "canonical", np.random.default_rng(0)) is question
    varied = {rephrase(question, "varied", np.random.default_rng(s)).question for s in range(60)}
    assert varied == {question.question, *question_forms(question, "train")}
    motion = Question("which way does the red circle move?", "left", "motion")
    assert rephrase(motion, "heldout", np.random.default_rng(0)) == motion  # no forms: kept
    assert caption_templates(2, "canonical", CAPTION_TEMPLATES[2]) == CAPTION_TEMPLATES[2]
    assert caption_templates(2, "heldout", CAPTION_TEMPLATES[2]) == CAPTION_FORMS[2]["heldout"]
    with pytest.raises(ValueError, match="phrasing must be one of"):
        rephrase(question, "poetic", np.random.default_rng(0))
