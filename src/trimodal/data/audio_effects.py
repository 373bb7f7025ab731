"""Waveform effects shared by the world's speech channels, training-time audio augmentation and
the harness's robustness curves: noise of several colours (white, pink, babble) mixed in at an
exact signal-to-noise ratio, and band-limited channels (telephone).

Every function is pure: randomness comes from a ``numpy.random.Generator`` passed in, inputs are
never modified, and waveforms are float ``[N]`` at the sample rate given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import signal as scipy_signal


def _power(signal: np.ndarray) -> float:
    """Mean square of a waveform ``[N]``, computed in float64."""
    return float(np.mean(np.square(signal, dtype=np.float64)))


def fit_length(waveform: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Tile or crop ``waveform`` ``[N]`` to ``[length]``, starting at sample ``offset``."""
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"expected a non-empty 1-D waveform, got shape {waveform.shape}")
    return np.resize(np.roll(waveform, -offset), length)


def add_noise_at_snr(waveform: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix ``noise`` into ``waveform`` so that ``10 * log10(P_signal / P_noise) == snr_db``.

    Powers are mean squares over the waveform's length; the noise is tiled or cropped to that
    length first and scaled in float64. The result is not clipped, because clipping would change the
    ratio; cast or clip afterwards if a consumer needs ``[-1, 1]``.

    Args:
        waveform: float waveform ``[N]``; must not be silent.
        noise: float noise ``[M]``, any ``M >= 1``; must not be all zeros.
        snr_db: target signal-to-noise ratio in decibels (finite).

    Returns:
        the noisy waveform ``[N]`` in ``waveform``'s floating dtype.
    """
    if not math.isfinite(snr_db):
        raise ValueError(f"add_noise_at_snr: snr_db must be finite, got {snr_db}")
    signal_power = _power(waveform) if waveform.size else 0.0
    if waveform.ndim != 1 or signal_power == 0.0:
        raise ValueError(
            "add_noise_at_snr: the waveform is silent (zero power) or not 1-D "
            f"(shape {waveform.shape}), so no noise level gives a finite SNR; drop silent clips"
        )
    fitted = fit_length(noise, len(waveform)).astype(np.float64)  # (N,)
    noise_power = _power(fitted)
    if noise_power == 0.0:
        raise ValueError("add_noise_at_snr: the noise is all zeros over the waveform's length")
    scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    noisy = waveform.astype(np.float64) + scale * fitted
    return noisy.astype(np.result_type(waveform.dtype, np.float32))


def white_noise(length: int, generator: np.random.Generator) -> np.ndarray:
    """Standard normal white noise ``[length]`` (float64, unit variance)."""
    return generator.standard_normal(length)


def babble_noise(
    others: Sequence[np.ndarray], length: int, count: int, generator: np.random.Generator
) -> np.ndarray:
    """Babble: the sum of ``count`` distinct talkers, each a unit-RMS stream of ``length`` samples.

    Each talker is an utterance drawn from ``others`` without replacement, started at a random
    sample offset and tiled (wrapping around) or cropped to ``length``; that stream is then scaled
    to unit RMS, so every talker is equally loud. Scale the sum with :func:`add_noise_at_snr`.

    Args:
        others: utterances ``[N_i]`` of other speakers (never the clean utterance itself).
        length: number of samples of the output.
        count: number of simultaneous talkers, ``1 <= count <= len(others)``.
        generator: draws the talkers and their offsets.

    Returns:
        the babble ``[length]``, float64.
    """
    if not 1 <= count <= len(others):
        raise ValueError(
            f"babble_noise: need 1 <= count <= len(others) = {len(others)}, got {count}"
        )
    babble = np.zeros(length, dtype=np.float64)
    for index in generator.choice(len(others), size=count, replace=False):
        utterance = others[int(index)]
        offset = int(generator.integers(len(utterance))) if utterance.size else 0
        stream = fit_length(utterance, length, offset).astype(np.float64)  # (length,)
        rms = math.sqrt(_power(stream))
        if rms == 0.0:
            raise ValueError(f"babble_noise: utterance {int(index)} of others is silent")
        babble += stream / rms
    return babble


def pink_noise(length: int, generator: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise ``[length]``, float64, unit variance: white noise shaped in the
    frequency domain by ``1 / sqrt(f)`` (the DC bin dropped)."""
    if length < 1:
        raise ValueError(f"pink_noise: length must be at least 1, got {length}")
    spectrum = np.fft.rfft(generator.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    shaping = np.zeros_like(frequencies)
    shaping[1:] = 1.0 / np.sqrt(frequencies[1:])
    noise = np.fft.irfft(spectrum * shaping, n=length)
    deviation = float(noise.std())
    return noise / deviation if deviation > 0 else noise


TELEPHONE_BAND = (300.0, 3400.0)
"""The narrow-band telephone channel's pass band in Hz (ITU-T G.712)."""


def telephone(waveform: np.ndarray, sample_rate: int, compand: bool = True) -> np.ndarray:
    """``waveform`` through a narrow-band telephone channel: band-passed to
    :data:`TELEPHONE_BAND` (4th-order Butterworth, zero phase), sampled at 8 kHz and back, and
    (``compand``) companded with 8-bit mu-law (G.711). Same length and dtype out. Without
    ``compand`` the channel is linear, which is how the mel-domain augmentation measures its
    gain (:mod:`trimodal.data.mel_effects`)."""
    if waveform.ndim != 1:
        raise ValueError(f"telephone: expected a 1-D waveform, got shape {waveform.shape}")
    low, high = TELEPHONE_BAND
    if sample_rate <= 2 * high:
        raise ValueError(
            f"telephone: sample rate {sample_rate} Hz is too low for a {high:.0f} Hz band"
        )
    sections = scipy_signal.butter(4, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    banded = scipy_signal.sosfiltfilt(sections, waveform.astype(np.float64))
    narrow = scipy_signal.resample_poly(banded, 8000, sample_rate)
    if compand:
        narrow = mu_law_round_trip(np.clip(narrow, -1.0, 1.0))
    back = scipy_signal.resample_poly(narrow, sample_rate, 8000)[: len(waveform)]
    back = np.pad(back, (0, len(waveform) - len(back)))
    return back.astype(np.result_type(waveform.dtype, np.float32))


def mu_law_round_trip(waveform: np.ndarray, levels: int = 256) -> np.ndarray:
    """Encode ``waveform`` in [-1, 1] with mu-law at ``levels`` steps, then decode."""
    mu = levels - 1
    encoded = np.sign(waveform) * np.log1p(mu * np.abs(waveform)) / math.log1p(mu)
    quantized = np.round((encoded + 1.0) / 2.0 * mu) / mu * 2.0 - 1.0
    return np.sign(quantized) * ((1.0 + mu) ** np.abs(quantized) - 1.0) / mu
