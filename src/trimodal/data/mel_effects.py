"""Training-time audio augmentation on the cached log-mel features.

The tensor cache stores log-mel clips, not waveforms (decoding and transforming every clip on
every step would cost more than the model here), so the channel effects a listener meets are
applied where the features live, in the mel power domain:

- **noise** (white, pink, or babble from other clips of the batch) mixed at a signal-to-noise
  ratio: speech and independent noise add in power in expectation, so the mixture's mel power
  is ``P_speech + g * P_noise`` with ``g`` set so that their summed powers have the ratio asked;
- **telephone band**: each mel band's power scaled by the gain of the waveform channel
  (:func:`trimodal.data.audio_effects.telephone`: 300-3400 Hz band-pass, 8 kHz sampling),
  measured once on white noise, plus the mu-law quantization noise: mu-law keeps about the same
  signal-to-noise ratio in every frame, so each frame gets white noise at 35-45 dB under that
  frame's power, below 4 kHz and leaking 30 dB weaker above (what matches the companded
  channel's log-mel best, band by band, on eSpeak speech);
- **speaking rate**: the frames resampled in time (tempo, pitch kept);
- **pitch**: the mel axis warped so that every frequency is multiplied by one factor;
- **SpecAugment** masks: time and frequency bands set to the clip's mean.

The tests check each against the log-mel of the same effect applied to a waveform.
Shapes follow :meth:`trimodal.data.tensors.RaggedAudio.batch`: features ``[B, n_mels, F]``
(``log(mel + 1e-6)``, see :class:`trimodal.data.transforms.LogMel`), frame mask ``[B, F]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trimodal.config import DataConfig
from trimodal.data.audio_effects import telephone
from trimodal.data.dataset import pad_spectrograms
from trimodal.data.transforms import LogMel, hz_to_mel, mel_filterbank, mel_to_hz

LOG_FLOOR = 1e-6
"""The constant inside :class:`~trimodal.data.transforms.LogMel`'s ``log(mel + 1e-6)``."""
NOISE_KINDS = ("white", "pink", "babble", "telephone")
QUANTIZATION_LEAK = 1e-3
"""Mu-law noise above 4 kHz relative to below it (-30 dB) after the channel's resampling."""
"""The channels :class:`AudioAugment` draws from, one per augmented clip."""


def mel_power(features: torch.Tensor) -> torch.Tensor:
    """Log-mel ``[..., M, T]`` -> mel power ``[..., M, T]`` (the floor removed, never negative)."""
    return (features.exp() - LOG_FLOOR).clamp_min(0.0)


def log_of_power(power: torch.Tensor) -> torch.Tensor:
    """Mel power ``[..., M, T]`` -> log-mel as :class:`~trimodal.data.transforms.LogMel` gives."""
    return torch.log(power + LOG_FLOOR)


def mix_at_snr(speech: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Mel powers ``speech [M, T]`` + ``noise [M, T]`` scaled so that
    ``10 log10(sum speech / sum scaled noise) == snr_db``; silent speech comes back unchanged."""
    speech_total, noise_total = float(speech.sum()), float(noise.sum())
    if speech_total <= 0.0 or noise_total <= 0.0:
        return speech
    gain = speech_total / (noise_total * 10.0 ** (snr_db / 10.0))
    return speech + gain * noise


@dataclass(frozen=True)
class MelChannels:
    """Per-band tables of the log-mel front end (``n_mels`` bands, ``n_fft``, ``sample_rate``
    as in :class:`~trimodal.data.transforms.LogMel`)."""

    telephone_gain: torch.Tensor
    """``[M]`` power gain of each mel band through the telephone channel."""
    centres_hz: np.ndarray
    """``[M]`` centre frequency of each band."""
    edges_mel: tuple[float, float]
    """Mel of the lowest and highest filter edge."""
    banks: dict[str, torch.Tensor]
    """Mel power ``[M, NOISE_BANK_FRAMES]`` of ``white``, ``pink`` (1/f power; the DC bin gets
    the first bin's) and ``narrowband`` (white below 4 kHz, what an 8 kHz channel carries)
    noise."""

    @staticmethod
    def build(n_mels: int, sample_rate: int = 16_000, n_fft: int = 400) -> MelChannels:
        """The tables for a front end of ``n_mels`` bands."""
        filterbank = mel_filterbank(n_mels, n_fft, sample_rate)  # (M, K)
        frequencies = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (K,)
        pink = 1.0 / np.maximum(frequencies, frequencies[1])
        narrowband = (frequencies < 4000.0).astype(np.float64)
        gain = telephone_gain(n_mels, sample_rate, n_fft)
        top = hz_to_mel(sample_rate / 2)
        centres = mel_to_hz(np.linspace(0.0, top, n_mels + 2))[1:-1]
        shapes = {"white": np.ones_like(pink), "pink": pink, "narrowband": narrowband}
        return MelChannels(
            gain,
            centres,
            (0.0, float(top)),
            {kind: noise_bank(filterbank, shape) for kind, shape in shapes.items()},
        )

    def noise(self, kind: str, frames: int, generator: torch.Generator) -> torch.Tensor:
        """Mel power ``[M, frames]`` of stationary ``white``, ``pink`` or ``narrowband`` (white
        below 4 kHz) noise: a crop, at a random frame, of a fixed bank of
        :data:`NOISE_BANK_FRAMES` frames (tiled when longer) made by :func:`noise_bank`."""
        if kind not in self.banks:
            raise ValueError(f"unknown stationary noise {kind!r}; known: {sorted(self.banks)}")
        bank = self.banks[kind]
        offset = int(torch.randint(bank.shape[1], (1,), generator=generator))
        return _tiled_crop(bank, offset, frames)

    def warp_pitch(self, features: torch.Tensor, factor: float) -> torch.Tensor:
        """Log-mel ``[M, T]`` of the same sound with every frequency times ``factor``: band
        ``m`` takes the (interpolated) value of the band centred at ``centre_m / factor``;
        bands whose source lies outside the front end's range get the nearest edge band."""
        bands = features.shape[0]
        source_mel = hz_to_mel(self.centres_hz / factor)
        low, high = self.edges_mel
        position = (source_mel - low) / (high - low) * (bands + 1) - 1.0  # band index, fractional
        position = np.clip(position, 0.0, bands - 1.0)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, bands - 1)
        weight = torch.from_numpy(position - below).float()[:, None]
        return features[below] * (1.0 - weight) + features[above] * weight


NOISE_BANK_FRAMES = 4000
"""Frames (40 s at a 10 ms hop) of each stationary noise kept for the crops."""


def noise_bank(filterbank: torch.Tensor, shape: np.ndarray) -> torch.Tensor:
    """Mel power ``[M, NOISE_BANK_FRAMES]`` of stationary noise whose mean power per FFT bin is
    ``shape [K]``: each bin's power exponentially distributed around that mean, as a Gaussian
    noise's periodogram is, then pooled by ``filterbank [M, K]`` (seeded, so every run and
    every rank has the same bank)."""
    generator = torch.Generator().manual_seed(0)
    draws = torch.empty(len(shape), NOISE_BANK_FRAMES).exponential_(generator=generator)
    return filterbank @ (torch.from_numpy(shape).float()[:, None] * draws)


def _tiled_crop(power: torch.Tensor, offset: int, frames: int) -> torch.Tensor:
    """``power [M, T]`` from frame ``offset`` on, wrapping around, for ``frames`` frames."""
    repeats = -(-(frames + offset) // power.shape[1])
    return power.repeat(1, repeats)[:, offset : offset + frames]


def telephone_gain(n_mels: int, sample_rate: int, n_fft: int, seconds: float = 8.0) -> torch.Tensor:
    """``[M]`` power gain of each mel band through the linear part of the telephone channel
    (:func:`~trimodal.data.audio_effects.telephone` without companding), measured on seeded
    white noise: the band's mean mel power out over its mean mel power in."""
    noise = np.random.default_rng(0).standard_normal(int(seconds * sample_rate)) * 0.1
    passed = telephone(noise, sample_rate, compand=False)
    front_end = LogMel(sample_rate, n_fft, n_mels=n_mels)
    before, after = (
        mel_power(front_end(torch.from_numpy(x.astype(np.float32)))).mean(dim=1)
        for x in (noise, passed)
    )
    return after / before


def stretch_time(features: torch.Tensor, factor: float) -> torch.Tensor:
    """Log-mel ``[M, T]`` spoken ``factor`` times as fast: ``[M, max(1, round(T / factor))]``,
    frames linearly interpolated (tempo changes, pitch does not)."""
    length = max(1, round(features.shape[1] / factor))
    if length == features.shape[1]:
        return features
    if features.shape[1] == 1:
        return features.expand(-1, length)
    resized = F.interpolate(features[None], size=length, mode="linear", align_corners=True)
    return resized[0]


def spec_mask(features: torch.Tensor, masks: int, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment: ``masks`` time bands (each up to a tenth of the frames) and ``masks``
    frequency bands (each up to an eighth of the mel bands) of ``features [M, T]`` set to the
    clip's mean; widths and places drawn from ``generator``."""
    out = features.clone()
    bands, frames = features.shape
    fill = float(features.mean())
    for axis, size in ((1, frames), (0, bands)):
        widest = max(1, size // (10 if axis == 1 else 8))
        for _ in range(masks):
            width = int(torch.randint(0, widest + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, size - width + 1), (1,), generator=generator))
            if axis == 1:
                out[:, start : start + width] = fill
            else:
                out[start : start + width] = fill
    return out


@dataclass(frozen=True)
class AudioAugment:
    """Per-clip audio augmentation of a training batch (``data.audio_augment``).

    Each clip, with ``probability``, goes through one channel drawn uniformly from
    :data:`NOISE_KINDS`: white, pink or babble noise (``babble_talkers`` other clips of the
    batch) at an SNR drawn in ``snr``, or the telephone band. Independently, each clip's rate is
    multiplied by a factor drawn log-uniformly in ``[1 / (1 + rate), 1 + rate]``, its pitch
    shifted by up to ``pitch`` semitones either way, and ``masks`` SpecAugment masks applied.
    """

    probability: float = 0.0
    snr: tuple[float, float] = (5.0, 25.0)
    rate: float = 0.0
    pitch: float = 0.0
    masks: int = 0
    babble_talkers: int = 3
    n_mels: int = 64
    channels: MelChannels = field(init=False, repr=False, compare=False)
    """The front end's tables, built from ``n_mels``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", MelChannels.build(self.n_mels))

    @property
    def active(self) -> bool:
        """True when it changes anything."""
        return self.probability > 0 or self.rate > 0 or self.pitch > 0 or self.masks > 0

    def __call__(
        self, features: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented ``features [B, M, F']`` and mask ``[B, F']`` (``F'`` follows the longest
        clip after rate changes); rows without audio stay empty."""
        lengths = mask.sum(dim=1).tolist()
        clips = [features[i, :, :n] for i, n in enumerate(lengths)]
        voiced = [i for i, n in enumerate(lengths) if n > 0]
        speaking = set(voiced)
        out = [
            self._clip(i, clips, voiced, generator) if i in speaking else c
            for i, c in enumerate(clips)
        ]
        return pad_spectrograms(out)

    def _clip(
        self, index: int, clips: list[torch.Tensor], voiced: list[int], generator: torch.Generator
    ) -> torch.Tensor:
        """One clip ``[M, T]`` through the drawn channel, rate, pitch and masks."""
        clip = clips[index]
        if self.probability > 0 and _uniform(generator) < self.probability:
            kind = NOISE_KINDS[int(torch.randint(len(NOISE_KINDS), (1,), generator=generator))]
            others = [clips[j] for j in voiced if j != index]
            clip = self._channel(clip, kind, others, generator)
        if self.rate > 0:
            clip = stretch_time(clip, math.exp(_uniform(generator, -1, 1) * math.log1p(self.rate)))
        if self.pitch > 0:
            clip = self.channels.warp_pitch(
                clip, 2.0 ** (_uniform(generator, -1, 1) * self.pitch / 12)
            )
        if self.masks > 0:
            clip = spec_mask(clip, self.masks, generator)
        return clip

    def _channel(
        self,
        clip: torch.Tensor,
        kind: str,
        others: list[torch.Tensor],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``clip [M, T]`` heard through ``kind``; babble without ``babble_talkers`` other
        clips in the batch falls back to pink noise."""
        speech = mel_power(clip.float())
        frames = clip.shape[1]
        if kind == "telephone":
            banded = speech * self.channels.telephone_gain[:, None]
            return log_of_power(banded + self._quantization(banded, generator))
        if kind == "babble" and len(others) >= self.babble_talkers:
            noise = babble_power(others, frames, self.babble_talkers, generator)
        else:
            noise = self.channels.noise("pink" if kind == "babble" else kind, frames, generator)
        return log_of_power(mix_at_snr(speech, noise, _uniform(generator, *self.snr)))

    def _quantization(self, banded: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mel power ``[M, T]`` of mu-law noise on band-limited speech ``banded [M, T]``: per
        frame, 35-45 dB under the frame's power, white below 4 kHz, 30 dB weaker above."""
        frames = banded.shape[1]
        shape = self.channels.noise("narrowband", frames, generator)
        shape = shape + QUANTIZATION_LEAK * self.channels.noise("white", frames, generator)
        per_frame = banded.sum(dim=0, keepdim=True) / shape.sum(dim=0, keepdim=True).clamp_min(
            1e-12
        )
        return shape * per_frame * 10.0 ** (-_uniform(generator, 35.0, 45.0) / 10.0)


def audio_augment(data: DataConfig) -> AudioAugment | None:
    """The recipe's ``data.audio_augment`` as an :class:`AudioAugment`, or None when it is off."""
    options = data.audio_augment
    augment = AudioAugment(
        options.probability,
        (options.snr[0], options.snr[1]),
        options.rate,
        options.pitch,
        options.masks,
        n_mels=data.n_mels,
    )
    return augment if augment.active else None


def babble_power(
    others: list[torch.Tensor], frames: int, talkers: int, generator: torch.Generator
) -> torch.Tensor:
    """Mel power ``[M, frames]`` of ``talkers`` other clips (log-mel ``[M, T_i]``) talking at
    once: each drawn without replacement, started at a random frame, tiled or cropped to
    ``frames``, scaled to unit mean power, then summed."""
    chosen = torch.randperm(len(others), generator=generator)[:talkers].tolist()
    total = torch.zeros(others[0].shape[0], frames)
    for index in chosen:
        power = mel_power(others[index].float())
        offset = int(torch.randint(power.shape[1], (1,), generator=generator))
        stream = _tiled_crop(power, offset, frames)
        mean = float(stream.mean())
        if mean > 0:
            total += stream / mean
    return total


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand(1, generator=generator))
