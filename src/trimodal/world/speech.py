"""Offline speech synthesis with eSpeak NG through the ``espeakng-loader`` wheel.

The wheel ships ``libespeak-ng.so`` and its voice data; we drive the library through ctypes in
synchronous mode and collect the int16 chunks it hands to a callback. The library keeps global
state, so one process synthesizes one utterance at a time (parallelize with processes).

Determinism: eSpeak seeds its random generator from the clock and carries wave-generator
state (phases, flutter) from one utterance to the next. Output is byte-reproducible when a
fresh process speaks the same sequence of utterances with the same seeds: :meth:`speak` takes a
seed, and the world generator synthesizes fixed chunks of scenes, each in a new process.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from trimodal.data.resample import resample

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_CHARS_UTF8 = 1
_SILENCE_THRESHOLD = 1e-3
_PAD_SECONDS = 0.05

#: Voices used by the world: base language plus an eSpeak variant (timbre).
VOICES: tuple[str, ...] = ("en-us+m3", "en+f3", "en-us+f4", "en+m7", "en-029+klatt2")

_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class VoiceSettings:
    """How one utterance is spoken: eSpeak voice name, words per minute and pitch (0-100)."""

    voice: str
    rate: int
    pitch: int


class SpeechSynthesisError(RuntimeError):
    """eSpeak NG refused an operation (bad voice name, failed initialisation, ...)."""


class Synthesizer:
    """Process-wide eSpeak NG synthesizer producing float32 mono waveforms.

    Example:
        >>> synth = Synthesizer()
        >>> wave = synth.speak("a red circle", VoiceSettings("en-us+m3", 160, 50), 16000)
        >>> wave.dtype, wave.ndim
        (dtype('float32'), 1)
    """

    _instance_library: ctypes.CDLL | None = None
    _native_rate: int = 0

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        # Keep the ctypes callback referenced for the life of the object: eSpeak stores the raw
        # pointer and would call freed memory otherwise.
        self._callback = _CALLBACK_TYPE(self._collect)
        self._lib = self._library()
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def _library(cls) -> ctypes.CDLL:
        if cls._instance_library is None:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.argtypes = [
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
            ]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_uint,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_void_p,
                ctypes.c_void_p,
            ]
            data_path = espeakng_loader.get_data_path().encode()
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
            if rate <= 0:
                raise SpeechSynthesisError(f"espeak_Initialize failed (returned {rate})")
            cls._native_rate = int(rate)
            cls._instance_library = lib
        return cls._instance_library

    @property
    def native_sample_rate(self) -> int:
        """Sample rate eSpeak synthesizes at (22,050 Hz for the bundled voices)."""
        return self._native_rate

    def _collect(self, wav: ctypes.Array, num_samples: int, _events: int) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def speak(
        self, text: str, settings: VoiceSettings, sample_rate: int, seed: int = 0
    ) -> np.ndarray:
        """Synthesize ``text``.

        Args:
            text: the sentence to speak (UTF-8).
            settings: voice, rate (words/min) and pitch (0-100).
            sample_rate: output rate; the native 22,050 Hz is resampled with a polyphase filter.
            seed: seeds eSpeak's random generator (used by some voices' noise sources).

        Returns:
            float32 waveform ``[N]`` in [-1, 1].
        """
        if self._lib.espeak_SetVoiceByName(settings.voice.encode()) != 0:
            raise SpeechSynthesisError(f"unknown eSpeak voice {settings.voice!r}")
        self._lib.espeak_SetParameter(_ESPEAK_RATE, int(settings.rate), 0)
        self._lib.espeak_SetParameter(_ESPEAK_PITCH, int(settings.pitch), 0)
        self._chunks = []
        self._lib.espeak_ng_SetRandSeed(seed)
        encoded = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(encoded)
        status = self._lib.espeak_Synth(buffer, len(encoded), 0, 0, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise SpeechSynthesisError(f"espeak_Synth failed with status {status} for {text!r}")
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise SpeechSynthesisError(f"eSpeak produced no audio for {text!r}")
        native = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        return resample(trim_silence(native, self._native_rate), self._native_rate, sample_rate)


def trim_silence(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing near-silence from ``waveform`` ``[N]``, keeping 50 ms of padding."""
    loud = np.flatnonzero(np.abs(waveform) > _SILENCE_THRESHOLD)
    if loud.size == 0:
        return waveform
    pad = int(_PAD_SECONDS * sample_rate)
    return waveform[max(0, loud[0] - pad) : loud[-1] + pad + 1]


def add_noise(waveform: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise so that signal power / noise power equals ``snr_db`` decibels.

    Args:
        waveform: float waveform ``[N]``.
        snr_db: target signal-to-noise ratio in dB.
        rng: the generator that draws the noise (deterministic per utterance).

    Returns:
        the noisy waveform ``[N]``, clipped to [-1, 1].
    """
    signal_power = float(np.mean(waveform.astype(np.float64) ** 2))
    noise_power = signal_power / (10.0 ** (snr_db / 10.0))
    noise = rng.standard_normal(waveform.shape) * np.sqrt(noise_power)
    return np.clip(waveform + noise, -1.0, 1.0).astype(np.float32)
