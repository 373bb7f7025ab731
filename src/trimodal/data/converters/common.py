"""What every converter shares: errors, the result, JSON field checks and paths."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from trimodal.data.manifest import SPLITS, OnError


class ConversionError(ValueError):
    """An input file of a converter is malformed; the message says where."""


@dataclass
class ConversionResult:
    """What a converter did.

    Attributes:
        rows: rows written to the manifest.
        skipped: one message per record left out with ``on_error="skip"`` (file, record, why).
    """

    rows: int
    skipped: list[str] = field(default_factory=list)

    def report(self) -> str:
        """``skipped K record(s):`` then one indented line per record (empty if none was)."""
        if not self.skipped:
            return ""
        return "\n".join(
            [f"skipped {len(self.skipped)} record(s):"] + [f"  {s}" for s in self.skipped]
        )


class RecordProblems:
    """Record-level problems: raised at once with ``"raise"``, collected with ``"skip"``."""

    def __init__(self, on_error: OnError):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.skipped: list[str] = []

    def add(self, error: ConversionError) -> None:
        """Raise ``error`` or note that its record is left out."""
        if self.on_error == "raise":
            raise error
        self.skipped.append(str(error))

    def result(self, rows: int) -> ConversionResult:
        """The :class:`ConversionResult` for ``rows`` written rows."""
        return ConversionResult(rows, list(self.skipped))


def relative(target: Path, manifest: Path) -> str:
    """``target`` relative to the folder of ``manifest`` (how manifests store paths)."""
    return os.path.relpath(target.resolve(), manifest.resolve().parent)


def load_json(path: Path) -> Any:
    """Parse a JSON file; a missing file or bad JSON is a :class:`ConversionError`."""
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise ConversionError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise ConversionError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None


def _wrong_type(where: str, value: Any) -> NoReturn:
    raise ConversionError(f"{where}: wrong type {type(value).__name__} ({value!r:.60})")


def check_type(value: Any, types: type | tuple[type, ...], where: str) -> Any:
    """Return ``value`` if it has one of ``types`` (a bool is never an int here)."""
    if not isinstance(value, types) or isinstance(value, bool):
        _wrong_type(where, value)
    return value


def require(record: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``record[key]``, which must exist and have one of ``types``.

    Args:
        record: a parsed JSON value that should be an object.
        key: the field to read.
        types: accepted Python types.
        where: ``FILE: json.path`` of ``record``, used in error messages.
    """
    if not isinstance(record, dict):
        raise ConversionError(f"{where}: expected an object, got {type(record).__name__}")
    if key not in record:
        raise ConversionError(f"{where}.{key}: missing required field")
    return check_type(record[key], types, f"{where}.{key}")


def optional(record: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``record[key]`` checked against ``types``, or None when the field is absent."""
    if key not in record:
        return None
    return check_type(record[key], types, f"{where}.{key}")


def caption_text(value: Any, where: str) -> str:
    """A caption stripped of surrounding space; an empty one is an error."""
    text = str(check_type(value, str, where)).strip()
    if not text:
        raise ConversionError(f"{where}: empty caption")
    return text


def check_split(split: str) -> None:
    """Reject a split the manifest does not know (a ValueError, not a ConversionError)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
