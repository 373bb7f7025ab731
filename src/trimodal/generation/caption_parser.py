"""Parse captions of the embedded world back into objects and relations, and score them.

:func:`parse_caption` reads the size/colour/shape phrases and spatial relations of a caption
(the grammar of :mod:`trimodal.world.language`); :func:`caption_attribute_accuracy` matches the
parsed objects to a scene graph and reports colour, shape, size, relation and count accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trimodal.generation.metrics import tokenize_caption
from trimodal.world.scene import COLORS, SHAPES, SIZES


@dataclass(frozen=True)
class ParsedObject:
    """One object mention; an attribute the caption did not state is None."""

    size: str | None
    color: str | None
    shape: str | None


@dataclass(frozen=True)
class ParsedRelation:
    """``objects[subject] <relation> objects[object]``, relation named as in the scene graph."""

    subject: int
    relation: str
    object: int


@dataclass(frozen=True)
class ParsedCaption:
    """Objects in the order the caption mentions them, and the relations it states."""

    objects: tuple[ParsedObject, ...]
    relations: tuple[ParsedRelation, ...]


_RELATION_PHRASES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("to", "the", "left", "of"), "left of"),
    (("to", "the", "right", "of"), "right of"),
    (("left", "of"), "left of"),
    (("right", "of"), "right of"),
    (("above",), "above"),
    (("below",), "below"),
)
_SLOTS = ("size", "color", "shape")


def _lex(tokens: list[str], vocabulary: dict[str, str]) -> list[tuple[str, Any]]:
    """Items ``("mention", {slot: word})``, ``("relation", name)`` and ``("it", None)``.

    Runs of attribute words form one mention; a repeated slot or any other word ends it.
    """
    items: list[tuple[str, Any]] = []
    mention: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        slot = vocabulary.get(tokens[i])
        if slot is not None and slot not in mention:
            mention[slot] = tokens[i]
            i += 1
            continue
        if mention:
            items.append(("mention", mention))
            mention = {}
            if slot is not None:
                continue  # a repeated slot starts the next mention
        phrase = next(
            (p for p in _RELATION_PHRASES if tuple(tokens[i : i + len(p[0])]) == p[0]), None
        )
        if phrase is not None:
            items.append(("relation", phrase[1]))
            i += len(phrase[0])
            continue
        if tokens[i] == "it":
            items.append(("it", None))
        i += 1
    if mention:
        items.append(("mention", mention))
    return items


def parse_caption(
    text: str,
    colors: Iterable[str] = tuple(COLORS),
    shapes: Iterable[str] = SHAPES,
    sizes: Iterable[str] = tuple(SIZES),
) -> ParsedCaption:
    """Invert the caption templates of :mod:`trimodal.world.language`.

    Every run of attribute words (``"large red circle"``) is a new object. A relation phrase
    (``"to the left of"``, ``"left of"``, ``"above"``, ``"below"``) between a mention and a
    following mention or ``"it"`` states ``subject relation object``; a relation without such
    neighbours is ignored. ``"it"`` is the anchor: the most recent mention that is not the
    subject of any relation stated so far, so ``"a A left of a B, and a C above it"`` and
    ``"a B with a A left of it and a C above it"`` both put C above B. Other words are ignored.

    Args:
        text: a caption.
        colors / shapes / sizes: the attribute vocabularies (default: the embedded world's).
    """
    vocabulary = {
        word: slot
        for slot, words in zip(_SLOTS, (sizes, colors, shapes), strict=True)
        for word in words
    }
    items = _lex(tokenize_caption(text), vocabulary)
    objects: list[ParsedObject] = []
    relations: list[ParsedRelation] = []
    subjects: set[int] = set()
    for position, (kind, value) in enumerate(items):
        if kind == "mention":
            objects.append(ParsedObject(value.get("size"), value.get("color"), value.get("shape")))
            continue
        if kind != "relation" or position == 0 or position + 1 == len(items):
            continue
        before, after = items[position - 1][0], items[position + 1][0]
        if before != "mention" or after not in ("mention", "it"):
            continue
        subject = len(objects) - 1
        subjects.add(subject)
        if after == "mention":
            target: int | None = subject + 1  # appended on the next iteration
        else:
            target = next((i for i in reversed(range(subject)) if i not in subjects), None)
        if target is not None:
            relations.append(ParsedRelation(subject, value, target))
    return ParsedCaption(tuple(objects), tuple(relations))


@dataclass(frozen=True)
class _Counts:
    """Numerators and denominators behind :func:`attribute_accuracy` for one caption."""

    scene_objects: int
    objects: int
    colors: int
    shapes: int
    sizes: int
    count: bool
    relations: int
    judged_relations: int

    @property
    def exact(self) -> bool:
        """Every object, the object count and every judged relation right."""
        all_objects = self.objects == self.scene_objects
        return all_objects and self.count and self.relations == self.judged_relations


def _shared(mention: ParsedObject, scene_object: Mapping[str, Any]) -> int:
    return sum(getattr(mention, slot) == scene_object[slot] for slot in _SLOTS)


def _match(parsed: ParsedCaption, scene_objects: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """One-to-one mention -> scene object matching maximizing shared attributes (exact DP).

    Pairs sharing no attribute are never matched. The DP runs over mentions with the set of
    used scene objects as state, so it is linear in the number of mentions.
    """
    best: dict[int, tuple[int, tuple[tuple[int, int], ...]]] = {0: (0, ())}
    for mention_index, mention in enumerate(parsed.objects):
        updated = dict(best)  # this mention left unmatched
        for used, (score, pairs) in best.items():
            for scene_index, scene_object in enumerate(scene_objects):
                shared = _shared(mention, scene_object)
                key = used | 1 << scene_index
                if shared == 0 or key == used:
                    continue
                if key not in updated or score + shared > updated[key][0]:
                    updated[key] = (score + shared, (*pairs, (mention_index, scene_index)))
        best = updated
    return dict(max(best.values(), key=lambda entry: entry[0])[1])


def _relation_counts(
    parsed: ParsedCaption, matching: dict[int, int], scene: Mapping[str, Any]
) -> tuple[int, int]:
    """(correct, judged) relation statements; see :func:`attribute_accuracy`."""
    truth = {(r["subject"], r["object"]): r["relation"] for r in scene["relations"]}
    verdicts: dict[tuple[int, int], bool] = {}
    ungrounded = 0
    for stated in parsed.relations:
        subject, target = matching.get(stated.subject), matching.get(stated.object)
        if subject is None or target is None:
            ungrounded += 1
            continue
        pair = (min(subject, target), max(subject, target))
        right = truth.get((subject, target)) == stated.relation
        verdicts[pair] = verdicts.get(pair, True) and right
    judged = max(len(verdicts) + ungrounded, len(scene["objects"]) - 1)
    return sum(verdicts.values()), judged


def _counts(parsed: ParsedCaption, scene: Mapping[str, Any]) -> _Counts:
    scene_objects = scene["objects"]
    matching = _match(parsed, scene_objects)
    pairs = [(parsed.objects[m], scene_objects[s]) for m, s in matching.items()]
    correct = {slot: sum(getattr(p, slot) == o[slot] for p, o in pairs) for slot in _SLOTS}
    relations, judged = _relation_counts(parsed, matching, scene)
    return _Counts(
        scene_objects=len(scene_objects),
        objects=sum(_shared(p, o) == len(_SLOTS) for p, o in pairs),
        colors=correct["color"],
        shapes=correct["shape"],
        sizes=correct["size"],
        count=len(parsed.objects) == len(scene_objects),
        relations=relations,
        judged_relations=judged,
    )


def _fraction(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, and 1.0 when there is nothing to judge."""
    return numerator / denominator if denominator else 1.0


def _summary(counts: Sequence[_Counts]) -> dict[str, float]:
    objects = sum(c.scene_objects for c in counts)
    scores = {
        "colors": _fraction(sum(c.colors for c in counts), objects),
        "shapes": _fraction(sum(c.shapes for c in counts), objects),
        "sizes": _fraction(sum(c.sizes for c in counts), objects),
        "relations": _fraction(
            sum(c.relations for c in counts), sum(c.judged_relations for c in counts)
        ),
    }
    scores["overall"] = sum(scores.values()) / len(scores)
    scores["objects"] = _fraction(sum(c.objects for c in counts), objects)
    scores["count"] = sum(c.count for c in counts) / len(counts)
    scores["exact"] = sum(c.exact for c in counts) / len(counts)
    return scores


def attribute_accuracy(parsed: ParsedCaption, scene: Mapping[str, Any]) -> dict[str, float]:
    """How faithfully one parsed caption describes its scene graph (``Scene.to_dict()`` form).

    Mentions are matched one-to-one to scene objects maximizing shared attributes; a mention
    sharing none with an object is never matched to it. Object scores are recall over scene
    objects (extra mentions only cost ``count``):

    - ``colors`` / ``shapes`` / ``sizes``: fraction of scene objects whose matched mention
      states that attribute correctly; ``objects``: all three correct.
    - ``count``: 1.0 if the caption mentions exactly as many objects as the scene holds.
    - ``relations``: statements are grouped by the unordered pair of scene objects they link,
      so ``"A left of B"`` and its inverse ``"B right of A"`` are one equivalent statement; a
      pair is correct if all its statements agree with the scene graph, and a statement about
      an unmatched mention is wrong. The denominator is the larger of the statements made and
      the ``objects - 1`` relations a complete caption states (the generator links every
      object to one anchor), so missing, wrong and hallucinated relations all lower it. 1.0
      when there is nothing to judge (one object, no statement).
    - ``overall``: mean of colors, shapes, sizes and relations; ``exact``: 1.0 if everything
      above is right.
    """
    return _summary([_counts(parsed, scene)])


def caption_attribute_accuracy(
    captions: Sequence[str], scenes: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Corpus :func:`attribute_accuracy` of captions against scene graphs (world vocabulary).

    Object-level scores are pooled over all scene objects, ``relations`` over all judged
    statements (so one-object scenes do not count), ``count`` and ``exact`` are means over
    captions, and ``overall`` is the mean of colors, shapes, sizes and relations.
    """
    if len(captions) != len(scenes) or not captions:
        raise ValueError(
            f"got {len(captions)} captions and {len(scenes)} scenes: pass one caption per scene"
        )
    return _summary(
        [_counts(parse_caption(text), scene) for text, scene in zip(captions, scenes, strict=True)]
    )
