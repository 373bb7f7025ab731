"""Captions and questions derived from scene graphs.

Captions come from paraphrase templates with spatial relations. Questions come in seven
families with single-word answers; a question only mentions objects that its words identify
uniquely, and a :class:`QuestionBalancer` picks answers so that each family's answers stay
balanced over the whole world.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations, permutations
from string import Formatter

import numpy as np

from trimodal.world.scene import COLORS, HOLDOUT_PAIRS, SHAPES, SIZES, Scene, SceneObject, relation

RELATION_WORDS: dict[str, str] = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
}
OPPOSITE: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three")
PLURALS: dict[str, str] = {
    shape: shape + ("es" if shape.endswith("x") else "s") for shape in SHAPES
}

QUESTION_FAMILIES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "size": tuple(SIZES),
    "count": NUMBER_WORDS,
    "exist": ("yes", "no"),
    "relation": ("yes", "no"),
    "compare": ("yes", "no"),
}
"""Every question family and its possible answers."""

CAPTION_TEMPLATES: dict[int, tuple[str, ...]] = {
    1: (
        "a {a}",
        "there is a {a}",
        "a picture of a {a}",
        "a single {a} on a plain background",
    ),
    2: (
        "a {a} {ab} a {b}",
        "there is a {a} {ab} a {b}",
        "a picture of a {a} {ab} a {b}",
        "a {b} with a {a} {ab} it",
    ),
    3: (
        "a {a} {ab} a {b}, and a {c} {cb} it",
        "there is a {a} {ab} a {b} and a {c} {cb} it",
        "a picture of a {a} {ab} a {b}, with a {c} {cb} it",
        "a {b} with a {a} {ab} it and a {c} {cb} it",
    ),
}


@dataclass(frozen=True)
class Question:
    """A question about a scene with its single-word answer and family."""

    question: str
    answer: str
    family: str


def caption(scene: Scene, rng: np.random.Generator, templates: Sequence[str] | None = None) -> str:
    """A caption naming every object with its full phrase and its relation to an anchor object.

    Args:
        scene: the scene graph.
        rng: chooses the template and which object is the anchor.
        templates: the templates to draw from (default: :data:`CAPTION_TEMPLATES` for the
            scene's object count).
    """
    order = [int(i) for i in rng.permutation(len(scene.objects))]
    templates = templates or CAPTION_TEMPLATES[len(scene.objects)]
    return _render_caption(templates[int(rng.integers(len(templates)))], scene, order).text


@dataclass(frozen=True)
class CaptionVariant:
    """A caption and where it names each object.

    Attributes:
        text: the caption.
        spans: ``(start, end, object)`` per object phrase: ``text[start:end]`` names
            ``scene.objects[object]``.
    """

    text: str
    spans: tuple[tuple[int, int, int], ...]


def caption_variants(scene: Scene) -> list[CaptionVariant]:
    """Every caption :func:`caption` can give ``scene``: each template with each object order.

    One object gives 4 captions, two give 8, three give 24 (the anchor is ``order[1]``).
    """
    templates = CAPTION_TEMPLATES[len(scene.objects)]
    return [
        _render_caption(template, scene, list(order))
        for order in permutations(range(len(scene.objects)))
        for template in templates
    ]


def all_captions(scene: Scene) -> list[str]:
    """The texts of :func:`caption_variants`."""
    return [variant.text for variant in caption_variants(scene)]


def _render_caption(template: str, scene: Scene, order: Sequence[int]) -> CaptionVariant:
    """Fill ``template``: ``a``, ``b``, ``c`` name ``scene.objects[order[0, 1, 2]]``, ``b`` the
    anchor; ``ab`` and ``cb`` are the relations of ``a`` and ``c`` to it."""
    objects = [scene.objects[i] for i in order]
    fields = {"a": objects[0].phrase()}
    if len(objects) >= 2:
        fields["b"] = objects[1].phrase()
        fields["ab"] = RELATION_WORDS[relation(objects[0], objects[1])]
    if len(objects) == 3:
        fields["c"] = objects[2].phrase()
        fields["cb"] = RELATION_WORDS[relation(objects[2], objects[1])]
    text, spans = "", []
    for literal, name, _, _ in Formatter().parse(template):
        text += literal
        if name is None:
            continue
        if name in ("a", "b", "c"):
            start = len(text)
            spans.append((start, start + len(fields[name]), order["abc".index(name)]))
        text += fields[name]
    return CaptionVariant(text, tuple(spans))


def _matches(obj: SceneObject, attributes: dict[str, str]) -> bool:
    return all(getattr(obj, name) == value for name, value in attributes.items())


_DESCRIPTOR_ORDERS: tuple[tuple[str, ...], ...] = (
    ("shape",),
    ("color",),
    ("color", "shape"),
    ("size", "shape"),
    ("size", "color"),
    ("size", "color", "shape"),
)


_ALL_DESCRIPTORS: tuple[tuple[str, ...], ...] = tuple(
    names for k in (1, 2, 3) for names in combinations(("size", "color", "shape"), k)
)


def describe(
    obj: SceneObject, objects: Sequence[SceneObject], without: str | None = None
) -> str | None:
    """The shortest phrase naming ``obj`` uniquely among ``objects``, never using ``without``.

    Returns:
        e.g. ``"star"``, ``"red object"``, ``"large red circle"``; None if no phrase is unique.
    """
    for names in _DESCRIPTOR_ORDERS:
        if without in names:
            continue
        attributes = {name: getattr(obj, name) for name in names}
        if sum(_matches(other, attributes) for other in objects) == 1:
            return _phrase(attributes)
    return None


def _phrase(attributes: dict[str, str]) -> str:
    """Attribute values in size-colour-shape order, "object" standing in for no shape."""
    words = [attributes[name] for name in ("size", "color", "shape") if name in attributes]
    return " ".join(words + ([] if "shape" in attributes else ["object"]))


def _attribute_questions(scene: Scene) -> dict[str, list[Question]]:
    found: dict[str, list[Question]] = defaultdict(list)
    objects = scene.objects
    for obj in objects:
        if (name := describe(obj, objects, without="color")) is not None:
            found["color"].append(Question(f"what color is the {name}?", obj.color, "color"))
        if (name := describe(obj, objects, without="shape")) is not None:
            found["shape"].append(Question(f"what shape is the {name}?", obj.shape, "shape"))
        if (name := describe(obj, objects, without="size")) is not None:
            found["size"].append(Question(f"what size is the {name}?", obj.size, "size"))
    return found


def _count_questions(scene: Scene) -> list[Question]:
    objects = scene.objects
    questions = [Question("how many objects are there?", NUMBER_WORDS[len(objects)], "count")]
    for color in COLORS:
        n = sum(obj.color == color for obj in objects)
        questions.append(Question(f"how many {color} objects are there?", NUMBER_WORDS[n], "count"))
    for shape in SHAPES:
        n = sum(obj.shape == shape for obj in objects)
        questions.append(
            Question(f"how many {PLURALS[shape]} are there?", NUMBER_WORDS[n], "count")
        )
    return questions


def _exist_questions(scene: Scene) -> list[Question]:
    questions = []
    for color in COLORS:
        for shape in SHAPES:
            if scene.split != "holdout" and (color, shape) in HOLDOUT_PAIRS:
                continue  # held-out pairs are never even named outside the hold-out
            present = any(o.color == color and o.shape == shape for o in scene.objects)
            answer = "yes" if present else "no"
            questions.append(Question(f"is there a {color} {shape}?", answer, "exist"))
    return questions


def _pair_questions(scene: Scene) -> dict[str, list[Question]]:
    found: dict[str, list[Question]] = defaultdict(list)
    objects = scene.objects
    for i, j in combinations(range(len(objects)), 2):
        for a, b in ((objects[i], objects[j]), (objects[j], objects[i])):
            name_a, name_b = describe(a, objects), describe(b, objects)
            if name_a is None or name_b is None:
                continue
            true_relation = relation(a, b)
            for rel, answer in ((true_relation, "yes"), (OPPOSITE[true_relation], "no")):
                text = f"is the {name_a} {RELATION_WORDS[rel]} the {name_b}?"
                found["relation"].append(Question(text, answer, "relation"))
            bigger = a.size == "large" and b.size == "small"
            smaller = a.size == "small" and b.size == "large"
            same = a.size == b.size
            for template, truth in (
                ("is the {a} bigger than the {b}?", bigger),
                ("is the {a} smaller than the {b}?", smaller),
                ("are the {a} and the {b} the same size?", same),
            ):
                text = template.format(a=name_a, b=name_b)
                found["compare"].append(Question(text, "yes" if truth else "no", "compare"))
    return found


def candidate_questions(scene: Scene) -> dict[str, list[Question]]:
    """Every valid question about ``scene``, grouped by family (empty families omitted)."""
    found = _attribute_questions(scene)
    found["count"] = _count_questions(scene)
    found["exist"] = _exist_questions(scene)
    found.update(_pair_questions(scene))
    return {family: qs for family, qs in found.items() if qs}


@dataclass
class QuestionBalancer:
    """Chooses questions for scenes in order so that each family's answers stay balanced.

    For each chosen family the balancer picks, among the answers this scene can support, the
    answer given least often so far (ties broken by the seeded generator), then one question
    with that answer. Run it sequentially over scenes in index order for determinism.
    """

    seed: int
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def choose(self, scene: Scene, per_scene: int) -> list[Question]:
        """Pick ``per_scene`` questions from distinct families for ``scene``."""
        rng = np.random.default_rng([self.seed, scene.index, 2])
        candidates = candidate_questions(scene)
        families = sorted(candidates)
        picked_families = [families[i] for i in rng.permutation(len(families))[:per_scene]]
        return [self._pick(family, candidates[family], rng) for family in picked_families]

    def _pick(self, family: str, questions: list[Question], rng: np.random.Generator) -> Question:
        by_answer: dict[str, list[Question]] = defaultdict(list)
        for question in questions:
            by_answer[question.answer].append(question)
        counter = self.counts[family]
        fewest = min(counter[answer] for answer in by_answer)
        answers = sorted(answer for answer in by_answer if counter[answer] == fewest)
        answer = answers[int(rng.integers(len(answers)))]
        options = by_answer[answer]
        counter[answer] += 1
        return options[int(rng.integers(len(options)))]


def object_phrases(scene: Scene) -> list[tuple[int, re.Pattern[str]]]:
    """(object index, pattern of "the <phrase>") for every phrase naming one object uniquely.

    A phrase is any non-empty choice of the object's size, colour and shape in that order
    ("star", "blue star", "small blue object", ...; "object" stands in for a missing shape),
    kept when no other object of the scene matches it. Every phrase :func:`describe` makes is
    among them.
    """
    phrases = []
    for index, obj in enumerate(scene.objects):
        for names in _ALL_DESCRIPTORS:
            attributes = {name: getattr(obj, name) for name in names}
            if sum(_matches(other, attributes) for other in scene.objects) != 1:
                continue
            pattern = re.compile(rf"\bthe {re.escape(_phrase(attributes))}\b")
            phrases.append((index, pattern))
    return phrases


def named_objects(
    question: str, scene: Scene, phrases: list[tuple[int, re.Pattern[str]]] | None = None
) -> list[int]:
    """Indices of the objects ``question`` names ("the large red circle", "the star"), in
    reading order; ``phrases`` is :func:`object_phrases` of ``scene`` (computed if None)."""
    first: dict[int, int] = {}
    for index, pattern in object_phrases(scene) if phrases is None else phrases:
        match = pattern.search(question)
        if match is not None and match.start() < first.get(index, len(question)):
            first[index] = match.start()
    return sorted(first, key=first.__getitem__)
