"""Questions and captions agree with the scene graph, read independently (tests/world/reference)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import numpy as np
import pytest

from tests.world import reference
from trimodal.world.language import (
    QUESTION_FAMILIES,
    QuestionBalancer,
    all_captions,
    candidate_questions,
    caption,
    caption_variants,
    describe,
    named_objects,
    object_phrases,
)
from trimodal.world.scene import Scene, SceneObject, sample_scene


def _objects(scene: Scene) -> list[dict]:
    return [asdict(obj) for obj in scene.objects]


def _object(shape: str, color: str, size: str, x: float, y: float) -> SceneObject:
    return SceneObject(shape, color, size, x, y, 0.1, 0.0)


def test_every_candidate_question_has_the_correct_answer() -> None:
    for index in range(150):
        scene = sample_scene(index, seed=11)
        for family, questions in candidate_questions(scene).items():
            assert family in QUESTION_FAMILIES
            for question in questions:
                expected = reference.answer(question.question, _objects(scene))
                assert question.answer == expected, (question, scene)
                assert question.answer in QUESTION_FAMILIES[family]


def test_hand_built_scene_answers() -> None:
    left = _object("circle", "red", "large", 0.2, 0.5)
    right = _object("star", "blue", "small", 0.8, 0.45)
    scene = Scene(0, "train", (60, 60, 60), (left, right))
    by_text = {q.question: q.answer for qs in candidate_questions(scene).values() for q in qs}
    assert by_text["what color is the star?"] == "blue"
    assert by_text["what shape is the red object?"] == "circle"
    assert by_text["is the circle to the left of the star?"] == "yes"
    assert by_text["is the star to the left of the circle?"] == "no"
    assert by_text["is the circle bigger than the star?"] == "yes"
    assert by_text["are the circle and the star the same size?"] == "no"
    assert by_text["how many objects are there?"] == "two"
    assert by_text["how many purple objects are there?"] == "zero"
    assert by_text["is there a blue star?"] == "yes"


def test_descriptions_are_unique_and_avoid_the_asked_attribute() -> None:
    twins = (
        _object("circle", "red", "large", 0.2, 0.2),
        _object("circle", "red", "small", 0.8, 0.2),
        _object("square", "red", "small", 0.5, 0.8),
    )
    assert describe(twins[0], twins) == "large circle"
    assert describe(twins[1], twins) == "small circle"
    assert describe(twins[2], twins) == "square"
    # Asking for the size of the large circle without naming its size is impossible here.
    assert describe(twins[0], twins, without="size") is None


def test_captions_state_every_object_and_true_relations() -> None:
    for index in range(200):
        scene = sample_scene(index, seed=5)
        text = caption(scene, np.random.default_rng(index))
        phrases, statements = reference.caption_facts(text)
        expected = Counter(obj.phrase() for obj in scene.objects)
        assert Counter(phrases) == expected, text
        assert len(statements) == len(scene.objects) - 1, text
        by_phrase = {obj.phrase(): asdict(obj) for obj in scene.objects}
        for subject, rel, target in statements:
            assert reference.true_relation(by_phrase[subject], by_phrase[target]) == rel, text


def test_all_captions_are_true_distinct_and_hold_every_drawn_caption() -> None:
    for index in range(60):
        scene = sample_scene(index, seed=5)
        variants = all_captions(scene)
        # 4 templates times every object order: 4, 8 or 24 captions.
        assert len(variants) == 4 * [1, 1, 2, 6][len(scene.objects)]
        assert len(set(variants)) == len(variants)
        by_phrase = {obj.phrase(): asdict(obj) for obj in scene.objects}
        for text in variants:
            phrases, statements = reference.caption_facts(text)
            assert Counter(phrases) == Counter(o.phrase() for o in scene.objects), text
            for subject, rel, target in statements:
                assert reference.true_relation(by_phrase[subject], by_phrase[target]) == rel
        for seed in range(10):
            assert caption(scene, np.random.default_rng(seed)) in variants
        for variant in caption_variants(scene):
            named = sorted(index for _, _, index in variant.spans)
            assert named == list(range(len(scene.objects)))
            for start, end, index in variant.spans:
                assert variant.text[start:end] == scene.objects[index].phrase()


def test_all_captions_of_a_hand_built_pair() -> None:
    left = _object("circle", "red", "large", 0.2, 0.5)
    right = _object("star", "blue", "small", 0.8, 0.45)
    variants = all_captions(Scene(0, "train", (60, 60, 60), (left, right)))
    assert "a large red circle to the left of a small blue star" in variants
    assert "there is a small blue star to the right of a large red circle" in variants
    assert "a small blue star with a large red circle to the left of it" in variants
    assert not any("above" in v or "below" in v for v in variants)


def test_captions_use_at_least_four_templates_per_object_count() -> None:
    starts: dict[int, set[str]] = {1: set(), 2: set(), 3: set()}
    for index in range(300):
        scene = sample_scene(index, seed=2)
        text = caption(scene, np.random.default_rng(index))
        skeleton = text
        for obj in scene.objects:
            skeleton = skeleton.replace(obj.phrase(), "X")
        starts[len(scene.objects)].add(skeleton.split(" X")[0] + "|" + str(skeleton.count("it")))
    assert all(len(s) >= 4 for s in starts.values()), starts


def test_balancer_keeps_answers_balanced_within_each_family() -> None:
    balancer = QuestionBalancer(seed=0)
    for index in range(1500):
        balancer.choose(sample_scene(index, seed=0), per_scene=4)
    for family, answers in QUESTION_FAMILIES.items():
        counts = [balancer.counts[family][answer] for answer in answers]
        assert min(counts) / max(counts) > 0.85, (family, counts)


@pytest.mark.parametrize("per_scene", [3, 4])
def test_balancer_picks_distinct_families(per_scene: int) -> None:
    balancer = QuestionBalancer(seed=1)
    for index in range(50):
        scene = sample_scene(index, seed=1)
        questions = balancer.choose(scene, per_scene)
        assert len(questions) == per_scene
        assert len({q.family for q in questions}) == per_scene


def test_named_objects_in_reading_order_by_any_unique_phrase() -> None:
    circle = _object("circle", "red", "large", 0.2, 0.5)
    star = _object("star", "blue", "small", 0.8, 0.45)
    other = _object("star", "green", "large", 0.5, 0.1)
    scene = Scene(0, "train", (60, 60, 60), (circle, star, other))
    assert named_objects("is the circle to the left of the blue star?", scene) == [0, 1]
    assert named_objects("is the small star bigger than the large red circle?", scene) == [1, 0]
    assert named_objects("what color is the small star?", scene) == [1]
    assert named_objects("what shape is the green object?", scene) == [2]
    assert named_objects("how many stars are there?", scene) == []
    assert named_objects("is there a red circle?", scene) == []  # "a", not "the": no referent
    # "the star" names no one object here (two stars), so it is not matched
    assert named_objects("what color is the star?", scene) == []


def test_every_two_object_question_names_two_distinct_objects() -> None:
    for index in range(60):
        scene = sample_scene(index, seed=5)
        phrases = object_phrases(scene)
        for family, questions in candidate_questions(scene).items():
            expected = {"relation": 2, "compare": 2, "color": 1, "shape": 1, "size": 1}
            for question in questions:
                named = named_objects(question.question, scene, phrases)
                assert len(named) == expected.get(family, 0), question
                assert len(set(named)) == len(named)
