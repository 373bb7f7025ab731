"""Offline eSpeak NG synthesis through the espeakng-loader wheel."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from trimodal.world.speech import (
    SpeechSynthesisError,
    Synthesizer,
    VoiceSettings,
    add_noise,
)


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    return Synthesizer()


def test_speaks_at_requested_rate_with_plausible_duration(synth: Synthesizer) -> None:
    wave = synth.speak("what color is the star?", VoiceSettings("en-us+m3", 160, 50), 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    seconds = len(wave) / 16000
    assert 0.6 < seconds < 3.0
    assert 0.05 < np.abs(wave).max() <= 1.0


def test_faster_rate_gives_shorter_audio(synth: Synthesizer) -> None:
    text = "a large red circle to the left of a small blue square"
    slow = synth.speak(text, VoiceSettings("en+f3", 130, 50), 16000)
    fast = synth.speak(text, VoiceSettings("en+f3", 200, 50), 16000)
    assert len(fast) < 0.8 * len(slow)


_FRESH_PROCESS_SCRIPT = """
import hashlib, sys
from trimodal.world.speech import VOICES, Synthesizer, VoiceSettings
synth = Synthesizer()
for voice in VOICES:
    for text in ("is there a green hexagon?", "a small white star above a large red circle"):
        wave = synth.speak(text, VoiceSettings(voice, 170, 40), 16000, seed=5)
        print(voice, hashlib.sha256(wave.tobytes()).hexdigest())
"""


def test_fresh_processes_speaking_the_same_sequence_give_identical_audio() -> None:
    runs = [
        subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    digests = [line.split()[1] for line in runs[0].splitlines()]
    assert len(set(digests)) == len(digests)  # every voice and sentence sounds different


def test_unknown_voice_is_a_clear_error(synth: Synthesizer) -> None:
    with pytest.raises(SpeechSynthesisError, match="no-such-voice"):
        synth.speak("hello", VoiceSettings("no-such-voice", 160, 50), 16000)


def test_noise_is_added_at_the_requested_snr() -> None:
    rng = np.random.default_rng(0)
    signal = (0.3 * np.sin(np.linspace(0, 2000 * np.pi, 160000))).astype(np.float32)
    noisy = add_noise(signal, 10.0, rng)
    noise = noisy - signal
    measured = 10 * np.log10(
        np.mean(signal.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2)
    )
    assert abs(measured - 10.0) < 0.2
