"""Speech styles: the default draws as the default world always did, noise lands at its SNR, and
held-out voices are never training voices."""

from __future__ import annotations

import numpy as np
import pytest

from trimodal.world.channel import HELDOUT_VOICES, TRAIN_VOICES, SpeechStyle, hear
from trimodal.world.speech import VOICES


def test_the_default_style_draws_voices_exactly_as_before() -> None:
    for seed in range(20):
        rng, again = np.random.default_rng(seed), np.random.default_rng(seed)
        drawn = SpeechStyle().voice(rng)
        # The default world's draw, by hand: voice, then rate in [130, 200], then pitch in [30, 70].
        voice = VOICES[int(again.integers(len(VOICES)))]
        rate, pitch = int(again.integers(130, 201)), int(again.integers(30, 71))
        assert (drawn.voice, drawn.rate, drawn.pitch) == (voice, rate, pitch)


def test_heldout_voices_are_not_training_voices() -> None:
    assert not set(HELDOUT_VOICES) & set(TRAIN_VOICES)
    assert set(VOICES) <= set(TRAIN_VOICES)


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noise_is_mixed_at_the_drawn_snr(kind: str) -> None:
    rng = np.random.default_rng(1)
    clean = (0.05 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    others = [0.1 * np.random.default_rng(i).standard_normal(9000) for i in range(4)]
    style = SpeechStyle(noises=(kind,), snr=(10.0, 10.0))
    noisy = hear(clean, style, 16000, rng, lambda: others)
    noise = noisy.astype(np.float64) - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.05)


def test_a_clean_style_changes_nothing_and_bad_fields_are_named() -> None:
    clean = np.linspace(-0.5, 0.5, 800, dtype=np.float32)
    assert np.array_equal(hear(clean, SpeechStyle(), 16000, np.random.default_rng(0), list), clean)
    with pytest.raises(ValueError, match="speech noises"):
        SpeechStyle(noises=("static",)).validate()
    with pytest.raises(ValueError, match="speech rate"):
        SpeechStyle(rate=(300, 200)).validate()
    with pytest.raises(ValueError, match="speech channels"):
        SpeechStyle(channels=()).validate()
