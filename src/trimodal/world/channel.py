"""How the world's speech is spoken and heard: voices, rates and pitches, background noise of
several kinds at a range of signal-to-noise ratios, and the channel it travels through.

A :class:`SpeechStyle` is part of a world's arguments; the default style speaks the default
world (five voices, 130-200 words a minute, clean). :data:`HELDOUT_VOICES` are kept out of every
training world, to measure whether a model learned speech or its five voices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trimodal.data.audio_effects import add_noise_at_snr, babble_noise, pink_noise, telephone
from trimodal.world.speech import VOICES, VoiceSettings

TRAIN_VOICES: tuple[str, ...] = (
    *VOICES,
    "en-us+m1",
    "en-us+f2",
    "en+m2",
    "en+f1",
    "en-gb-x-rp+m4",
    "en-gb-x-rp+f5",
    "en-us+klatt",
    "en+m5",
    "en-029+f3",
    "en-us+steph",
    "en+david",
    "en-us+linda",
    "en+max",
    "en-gb-scotland+m6",
    "en-us+Andy",
    "en+annie",
)
"""Voices a varied training world speaks with (the default world's five first)."""

HELDOUT_VOICES: tuple[str, ...] = (
    "en-us-nyc+m8",
    "en-gb-x-gbclan+f4",
    "en+grandma",
    "en-us+mike2",
    "en-gb-x-gbcwmd+robert",
    "en+Lee",
)
"""Voices no training world uses, for measuring generalization to new speakers."""

NOISES: tuple[str, ...] = ("none", "white", "pink", "babble")
CHANNELS: tuple[str, ...] = ("clean", "telephone")
BABBLE_TALKERS = 3


@dataclass(frozen=True)
class SpeechStyle:
    """How a world's utterances are spoken and heard.

    Attributes:
        voices: eSpeak voice names drawn from per utterance.
        rate: ``(low, high)`` words per minute, drawn uniformly (integers).
        pitch: ``(low, high)`` eSpeak pitch (0-100).
        noises: background noise kinds drawn from per utterance (``none``, ``white``, ``pink``,
            ``babble``: :data:`BABBLE_TALKERS` other utterances of the world at once).
        snr: ``(low, high)`` signal-to-noise ratio in dB for the noisy ones.
        channels: channels drawn from per utterance (``clean``, ``telephone``).
    """

    voices: tuple[str, ...] = VOICES
    rate: tuple[int, int] = (130, 200)
    pitch: tuple[int, int] = (30, 70)
    noises: tuple[str, ...] = ("none",)
    snr: tuple[float, float] = (10.0, 30.0)
    channels: tuple[str, ...] = ("clean",)

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        if not self.voices:
            raise ValueError("speech voices must name at least one eSpeak voice")
        if not 40 <= self.rate[0] <= self.rate[1] <= 450:
            raise ValueError(f"speech rate must be 40 <= low <= high <= 450 wpm, got {self.rate}")
        if not 0 <= self.pitch[0] <= self.pitch[1] <= 100:
            raise ValueError(f"speech pitch must be 0 <= low <= high <= 100, got {self.pitch}")
        _check_kinds("noises", self.noises, NOISES)
        _check_kinds("channels", self.channels, CHANNELS)
        if self.snr[0] > self.snr[1]:
            raise ValueError(f"speech snr must be (low, high), got {self.snr}")

    def voice(self, rng: np.random.Generator) -> VoiceSettings:
        """One utterance's voice, rate and pitch (the default style draws exactly as the
        default world always did)."""
        return VoiceSettings(
            voice=self.voices[int(rng.integers(len(self.voices)))],
            rate=int(rng.integers(self.rate[0], self.rate[1] + 1)),
            pitch=int(rng.integers(self.pitch[0], self.pitch[1] + 1)),
        )

    @property
    def needs_babble(self) -> bool:
        """True when some utterances get babble, so planning must pick talkers for them."""
        return "babble" in self.noises

    @property
    def is_clean(self) -> bool:
        """True when no noise or channel effect is ever applied."""
        return self.noises == ("none",) and self.channels == ("clean",)


def _check_kinds(field: str, values: Sequence[str], known: Sequence[str]) -> None:
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        raise ValueError(f"speech {field} must be among {tuple(known)}, got {tuple(values)}")


def hear(
    waveform: np.ndarray,
    style: SpeechStyle,
    sample_rate: int,
    rng: np.random.Generator,
    talkers: Callable[[], Sequence[np.ndarray]],
) -> np.ndarray:
    """``waveform`` ``[N]`` as a listener hears it in ``style``: a noise kind and SNR drawn,
    the noise mixed in, then a channel drawn and applied; clipped to [-1, 1], float32.

    ``talkers()`` gives other utterances for babble (only called when babble is drawn).
    """
    noise_kind = style.noises[int(rng.integers(len(style.noises)))]
    channel = style.channels[int(rng.integers(len(style.channels)))]
    out = waveform.astype(np.float64)
    if noise_kind != "none" and float(np.abs(out).max(initial=0.0)) > 0:
        snr = float(rng.uniform(*style.snr))
        if noise_kind == "white":
            noise = rng.standard_normal(len(out))
        elif noise_kind == "pink":
            noise = pink_noise(len(out), rng)
        else:
            others = talkers()
            noise = babble_noise(others, len(out), min(BABBLE_TALKERS, len(others)), rng)
        out = add_noise_at_snr(out, noise, snr)
    if channel == "telephone":
        out = telephone(out, sample_rate)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
