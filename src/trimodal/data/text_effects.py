"""Text effects shared by training-time augmentation and the harness's robustness curves:
character-level typos and word dropout, drawn from a ``numpy.random.Generator``."""

from __future__ import annotations

import string

import numpy as np

_LOWERCASE = string.ascii_lowercase
_TYPO_KINDS = ("delete", "substitute", "insert", "swap")


def _random_letter(generator: np.random.Generator, excluded: str) -> str:
    """A random lowercase letter not in ``excluded`` (compared case-insensitively)."""
    allowed = [letter for letter in _LOWERCASE if letter not in excluded.lower()]
    return allowed[int(generator.integers(len(allowed)))]


def _typo(text: str, index: int, generator: np.random.Generator) -> tuple[str, int]:
    """Corrupt the letter ``text[index]``; return the replacement text and characters consumed.

    Every typo changes the text locally: substitutes and insertions differ from the letter (an
    insertion also from the character after it), and a swap needs a different letter next.
    """
    letter = text[index]
    following = text[index + 1] if index + 1 < len(text) else ""
    can_swap = following.isalpha() and following != letter
    kinds = _TYPO_KINDS if can_swap else _TYPO_KINDS[:3]
    kind = kinds[int(generator.integers(len(kinds)))]
    if kind == "delete":
        return "", 1
    if kind == "substitute":
        return _random_letter(generator, letter), 1
    if kind == "insert":
        return letter + _random_letter(generator, letter + following), 1
    return following + letter, 2


def typos(text: str, rate: float, generator: np.random.Generator) -> str:
    """Character-level typos: each letter independently, with probability ``rate``, gets one typo.

    A typo is chosen uniformly among: delete the letter; substitute a random lowercase letter
    different from it; insert a random letter after it; swap it with the next character when that
    is a different letter. A letter moved by a swap is part of that typo and gets no draw of its
    own. Non-letters (spaces, digits, punctuation) are never touched, so words stay aligned. Because
    each typo changes its word in a way later typos cannot undo, ``rate = 1`` changes every word
    that has a letter.

    Args:
        text: the clean text.
        rate: probability per letter, in ``[0, 1]``; ``0`` returns ``text`` unchanged.
        generator: draws which letters get typos and which typos.

    Returns:
        the corrupted text.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"typos: rate must be in [0, 1], got {rate}")
    if rate == 0.0:
        return text
    pieces: list[str] = []
    index = 0
    while index < len(text):
        if text[index].isalpha() and generator.random() < rate:
            piece, consumed = _typo(text, index, generator)
        else:
            piece, consumed = text[index], 1
        pieces.append(piece)
        index += consumed
    return "".join(pieces)


def drop_words(text: str, rate: float, generator: np.random.Generator) -> str:
    """Word dropout: each whitespace-separated word independently removed with probability
    ``rate``; at least one word always stays (the first kept by the draw, else a random one).
    Punctuation attached to a word goes with it; words are joined by single spaces.

    Args:
        text: the text to thin out.
        rate: per-word drop probability in ``[0, 1]``.
        generator: draws which words go.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop_words: rate must be in [0, 1], got {rate}")
    words = text.split()
    if rate == 0.0 or not words:
        return text
    kept = [word for word in words if generator.random() >= rate]
    if not kept:
        kept = [words[int(generator.integers(len(words)))]]
    return " ".join(kept)
