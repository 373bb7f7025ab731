"""Word dropout against hand-worked draws and a naive per-word loop."""

from __future__ import annotations

import numpy as np
import pytest

from trimodal.data.text_effects import drop_words


def test_rate_zero_and_one_are_identity_and_one_word() -> None:
    text = "what colour is the big star?"
    assert drop_words(text, 0.0, np.random.default_rng(0)) == text
    kept = drop_words(text, 1.0, np.random.default_rng(0))
    assert len(kept.split()) == 1 and kept in text.split()
    assert drop_words("", 0.5, np.random.default_rng(0)) == ""


def test_each_word_goes_with_its_own_draw() -> None:
    text = "is there a red circle left of the square"
    words = text.split()
    draws = np.random.default_rng(7).random(len(words))
    expected = " ".join(w for w, d in zip(words, draws, strict=True) if d >= 0.3)
    assert drop_words(text, 0.3, np.random.default_rng(7)) == expected


def test_about_rate_of_the_words_go() -> None:
    generator = np.random.default_rng(1)
    text = " ".join(f"w{i}" for i in range(2000))
    kept = drop_words(text, 0.25, generator).split()
    assert 0.22 < 1 - len(kept) / 2000 < 0.28
    assert kept == sorted(kept, key=lambda w: int(w[1:]))  # order kept


def test_bad_rate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="rate must be in"):
        drop_words("a b", 1.5, np.random.default_rng(0))
