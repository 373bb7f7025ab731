"""An independent reading of the world's language, written for the tests.

It parses questions and captions with regular expressions and recomputes every fact from the
raw scene graph (coordinates, attributes) without using trimodal's own question generator.
"""

from __future__ import annotations

import re
from typing import Any

SIZES = ("small", "large")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white")
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
NUMBERS = ("zero", "one", "two", "three")
RELATIONS = ("to the left of", "to the right of", "above", "below")


def true_relation(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Relation of a to b along the axis where they are further apart."""
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def referents(phrase: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects matching a phrase such as 'large red object' or 'star'."""
    words = phrase.split()
    wanted: dict[str, str] = {}
    for word in words:
        if word in SIZES:
            wanted["size"] = word
        elif word in COLORS:
            wanted["color"] = word
        elif word in SHAPES:
            wanted["shape"] = word
        elif word != "object":
            raise AssertionError(f"unexpected word {word!r} in {phrase!r}")
    return [o for o in objects if all(o[k] == v for k, v in wanted.items())]


def the_one(phrase: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The single object a definite phrase names; fails if it is ambiguous or absent."""
    found = referents(phrase, objects)
    assert len(found) == 1, f"'the {phrase}' names {len(found)} objects"
    return found[0]


def answer(question: str, objects: list[dict[str, Any]]) -> str:
    """The correct single-word answer of ``question`` about ``objects``."""
    if m := re.fullmatch(r"what (color|shape|size) is the (.+)\?", question):
        return str(the_one(m.group(2), objects)[m.group(1)])
    if question == "how many objects are there?":
        return NUMBERS[len(objects)]
    if m := re.fullmatch(r"how many (\w+) objects are there\?", question):
        return NUMBERS[sum(o["color"] == m.group(1) for o in objects)]
    if m := re.fullmatch(r"how many (\w+)s are there\?", question):
        return NUMBERS[sum(o["shape"] == m.group(1) for o in objects)]
    if m := re.fullmatch(r"is there a (\w+) (\w+)\?", question):
        hit = any(o["color"] == m.group(1) and o["shape"] == m.group(2) for o in objects)
        return "yes" if hit else "no"
    relations = "|".join(RELATIONS)
    if m := re.fullmatch(rf"is the (.+) ({relations}) the (.+)\?", question):
        a, b = the_one(m.group(1), objects), the_one(m.group(3), objects)
        return "yes" if true_relation(a, b) == m.group(2) else "no"
    radius = {"small": 0, "large": 1}
    if m := re.fullmatch(r"is the (.+) (bigger|smaller) than the (.+)\?", question):
        a, b = the_one(m.group(1), objects), the_one(m.group(3), objects)
        sign = radius[a["size"]] - radius[b["size"]]
        return "yes" if (sign > 0 if m.group(2) == "bigger" else sign < 0) else "no"
    if m := re.fullmatch(r"are the (.+) and the (.+) the same size\?", question):
        a, b = the_one(m.group(1), objects), the_one(m.group(2), objects)
        return "yes" if a["size"] == b["size"] else "no"
    raise AssertionError(f"question of unknown form: {question!r}")


PHRASE = rf"(?:{'|'.join(SIZES)}) (?:{'|'.join(COLORS)}) (?:{'|'.join(SHAPES)})"


def caption_facts(caption: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Object phrases in order, and (subject, relation, object) statements of a caption."""
    phrases = re.findall(PHRASE, caption)
    statements = []
    pattern = rf"({PHRASE}) ({'|'.join(RELATIONS)}) (a {PHRASE}|it)"
    explicit = [m for m in re.finditer(pattern, caption)]
    anchors = [m.group(3)[2:] for m in explicit if m.group(3) != "it"]
    anchor = anchors[0] if anchors else phrases[0]
    for m in explicit:
        target = anchor if m.group(3) == "it" else m.group(3)[2:]
        statements.append((m.group(1), m.group(2), target))
    return phrases, statements
