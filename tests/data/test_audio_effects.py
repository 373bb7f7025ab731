"""Pink noise, the telephone channel and mu-law against hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from trimodal.data.audio_effects import mu_law_round_trip, pink_noise, telephone

RATE = 16_000


def test_pink_noise_falls_by_one_decade_of_power_per_decade_of_frequency() -> None:
    noise = pink_noise(RATE * 8, np.random.default_rng(0))
    assert noise.std() == pytest.approx(1.0, rel=1e-6)
    frequencies, power = signal.welch(noise, RATE, nperseg=4096)
    band = (frequencies > 50) & (frequencies < 5000)
    slope = np.polyfit(np.log10(frequencies[band]), np.log10(power[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)


def _tone(hz: float) -> np.ndarray:
    t = np.arange(RATE) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _gain_db(hz: float) -> float:
    clean = _tone(hz)
    out = telephone(clean, RATE)
    assert out.shape == clean.shape and out.dtype == np.float32
    middle = slice(RATE // 4, 3 * RATE // 4)  # away from the filter's edges
    return 20 * np.log10(np.std(out[middle]) / np.std(clean[middle]))


def test_telephone_passes_the_voice_band_and_cuts_outside_it() -> None:
    assert abs(_gain_db(1000.0)) < 1.0
    assert _gain_db(100.0) < -20.0
    assert _gain_db(6000.0) < -30.0


def test_mu_law_keeps_zero_and_small_errors() -> None:
    values = np.linspace(-1, 1, 2001)
    back = mu_law_round_trip(values)
    assert back[1000] == pytest.approx(0.0, abs=1e-3)
    # The worst error is half a code step where the decoder is steepest (full scale):
    # d/dq ((1 + mu) ** q - 1) / mu at q = 1 is ln(256) * 256 / 255, a step is 2 / 255.
    bound = 0.5 * (2 / 255) * np.log(256) * 256 / 255
    assert np.abs(back - values).max() <= bound + 1e-9
    assert np.abs(back - values)[np.abs(values) < 0.1].max() < 0.004  # fine near zero
    assert np.all(np.diff(back) >= 0)  # monotone


def test_telephone_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="1-D"):
        telephone(np.zeros((2, 100), np.float32), RATE)
    with pytest.raises(ValueError, match="too low"):
        telephone(np.zeros(100, np.float32), 6000)
