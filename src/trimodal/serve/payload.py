"""Reading a request's JSON fields by path, each failure a 400 that names the field.

>>> body = {"top_k": "3"}
>>> integer(body, "top_k", "top_k", default=10)  # doctest: +SKIP
APIError: top_k: must be an integer, got a string
"""

from __future__ import annotations

import json
import math
from typing import Any

from trimodal.serve.errors import bad_field

MAX_JSON_DEPTH = 32
"""Deeper JSON than this is refused before it is walked (no recursion blow-ups)."""

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def describe(value: Any) -> str:
    """``"a string"``, ``"an array"``, ... for messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object (400 for bad UTF-8, bad JSON, non-objects, depth)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_field("body", "is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except RecursionError:  # the C parser's own guard against very deep nesting
        raise bad_field("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as error:
        raise bad_field("body", f"is not valid JSON ({error})") from None
    except ValueError as error:  # e.g. integers with too many digits
        raise bad_field("body", f"is not usable JSON ({error})") from None
    if not isinstance(value, dict):
        raise bad_field("body", f"must be a JSON object, got {describe(value)}")
    if _too_deep(value):
        raise bad_field("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    """Whether arrays and objects nest deeper than :data:`MAX_JSON_DEPTH` (walked without
    recursion; stops at the first level too deep)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def require(body: dict[str, Any], key: str, path: str) -> Any:
    """``body[key]``, or a 400 saying the field is missing."""
    if key not in body or body[key] is None:
        raise bad_field(path, "is required")
    return body[key]


def string(body: dict[str, Any], key: str, path: str, default: str | None = None) -> str | None:
    """An optional string field."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_field(path, f"must be a string, got {describe(value)}")
    return value


def integer(
    body: dict[str, Any],
    key: str,
    path: str,
    default: int | None = None,
    low: int | None = None,
    high: int | None = None,
) -> int | None:
    """An optional integer field within ``[low, high]``."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_field(path, f"must be an integer, got {describe(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise bad_field(path, f"must be between {low} and {high}, got {value}")
    return value


def number(
    body: dict[str, Any], key: str, path: str, default: float, low: float, high: float
) -> float:
    """An optional number field within ``[low, high]``."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(path, f"must be a number, got {describe(value)}")
    if not math.isfinite(value) or not low <= value <= high:
        raise bad_field(path, f"must be between {low} and {high}, got {value}")
    return float(value)


def boolean(body: dict[str, Any], key: str, path: str, default: bool = False) -> bool:
    """An optional boolean field."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_field(path, f"must be true or false, got {describe(value)}")
    return value


def obj(value: Any, path: str) -> dict[str, Any]:
    """``value`` as an object, or a 400."""
    if not isinstance(value, dict):
        raise bad_field(path, f"must be an object, got {describe(value)}")
    return value


def array(value: Any, path: str, max_items: int) -> list[Any]:
    """``value`` as a non-empty array of at most ``max_items``, or a 400."""
    if not isinstance(value, list):
        raise bad_field(path, f"must be an array, got {describe(value)}")
    if not value:
        raise bad_field(path, "must not be empty")
    if len(value) > max_items:
        raise bad_field(path, f"has {len(value)} items; at most {max_items} are accepted")
    return value
