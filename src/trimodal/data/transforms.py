"""Preprocessing: images to normalized tensors, audio to log-mel spectrograms.

Audio is read with soundfile (any sample rate, any channel count), mixed down to mono,
resampled with scipy's polyphase filter, then turned into a log-mel spectrogram with
``torch.stft`` and a triangular mel filterbank (HTK mel scale).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile
import torch
from PIL import Image

from trimodal.data.resample import resample

IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.25, 0.25, 0.25)


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 192_000
"""Sample rates audio may declare: a header claiming 100 MHz would make the resampling filter
hundreds of millions of taps long."""

MAX_IMAGE_PIXELS = 4096 * 4096
"""Largest image (width x height) any reader decodes: beyond it a file is refused from its
header, before its pixels are decoded (a PNG of a few kB can claim gigapixels)."""


def open_image(
    source: str | os.PathLike[str] | BinaryIO,
    name: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Decode an image file (or stream) to RGB, refusing what cannot be used.

    Args:
        name: how messages name it (default ``image file <path>``).

    Raises:
        FileNotFoundError: no file at a path.
        ValueError: not an image Pillow decodes (empty, truncated, another format), or over
            ``max_pixels`` (checked from the header) -- one line naming the image.
    """
    label = name or f"image file {source}"
    if isinstance(source, str | os.PathLike) and not os.path.isfile(source):
        raise FileNotFoundError(f"image file not found: {source}")
    try:
        with Image.open(source) as opened:
            width, height = opened.size
            if width * height <= max_pixels:
                opened.load()
                return opened.convert("RGB")
    except Image.DecompressionBombError:
        width = height = 0
    except (OSError, SyntaxError, EOFError, ValueError) as error:  # UnidentifiedImageError too
        raise ValueError(f"cannot decode {label}: {error}") from None
    raise ValueError(too_many_pixels(label, width, height, max_pixels))


def too_many_pixels(label: str, width: int, height: int, max_pixels: int) -> str:
    """The refusal of an image over ``max_pixels`` (``width`` 0: Pillow refused to open it)."""
    size = f"is {width}x{height} pixels" if width else "has too many pixels"
    return (
        f"{label} {size}, over the limit of {max_pixels} pixels (a decompression bomb or an "
        f"image to shrink first)"
    )


@dataclass(frozen=True)
class ImageTransform:
    """PIL image or path -> float tensor ``[3, size, size]``, normalized per channel.

    Augmentation (off by default) is a random translation of up to ``max_shift`` pixels (edge
    padded) and brightness/contrast jitter. It never flips or rotates: left/right and above/below
    are facts the captions state.
    """

    size: int = 64
    mean: tuple[float, float, float] = IMAGE_MEAN
    std: tuple[float, float, float] = IMAGE_STD
    augment: bool = False
    max_shift: int = 3
    jitter: float = 0.1

    def load(self, source: str | os.PathLike[str] | Image.Image) -> torch.Tensor:
        """Decode and resize to a float tensor ``[3, size, size]`` in [0, 1]."""
        image = source if isinstance(source, Image.Image) else open_image(source)
        image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[..., 3, H, W]`` in [0, 1] -> ``(pixels - mean) / std``."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
        return (pixels - mean) / std

    def __call__(
        self, source: str | os.PathLike[str] | Image.Image, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Load, optionally augment, normalize: returns ``[3, size, size]``."""
        pixels = self.load(source)
        if self.augment:
            pixels = self._augment(pixels, generator)
        return self.normalize(pixels)

    def _augment(self, pixels: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        shift = self.max_shift
        if shift > 0:
            padded = torch.nn.functional.pad(pixels.unsqueeze(0), (shift,) * 4, mode="replicate")[0]
            dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
            pixels = padded[:, dy : dy + self.size, dx : dx + self.size]
        factors = 1.0 + (torch.rand(2, generator=generator) * 2 - 1) * self.jitter
        mean = pixels.mean()
        return ((pixels - mean) * factors[1] + mean * factors[0]).clamp(0.0, 1.0)


def load_audio(
    path: str | os.PathLike[str], sample_rate: int = 16_000, max_seconds: float | None = None
) -> torch.Tensor:
    """Read any soundfile-supported file as mono float32 at ``sample_rate``.

    Returns:
        waveform ``[N]``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: as :func:`decode_audio`; each message names the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    return decode_audio(str(path), f"audio file {path}", sample_rate, max_seconds)


def decode_audio(
    source: str | BinaryIO,
    name: str,
    sample_rate: int = 16_000,
    max_seconds: float | None = None,
) -> torch.Tensor:
    """Decode audio from a file path or an open binary stream as mono float32 at ``sample_rate``.

    Args:
        source: a path, or a seekable binary stream (bytes a client sent).
        name: how messages name the audio (``"audio file clip.wav"``, ``"field 'file'"``).

    Returns:
        waveform ``[N]``.

    Raises:
        ValueError: not audio soundfile can decode, a sample rate outside 1-192 kHz, no
            samples, NaN or infinite samples (one such clip would make a trained model NaN), or
            longer than ``max_seconds`` (checked from the header, before any sample is read).
    """
    try:
        info = soundfile.info(source)
        if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
            raise ValueError(
                f"{name} declares {info.samplerate} Hz; sample rates from {MIN_SAMPLE_RATE} to "
                f"{MAX_SAMPLE_RATE} Hz are read"
            )
        if not isinstance(source, str):
            source.seek(0)
        if max_seconds is not None:
            duration = info.duration
            if duration > max_seconds:
                raise ValueError(
                    f"{name} lasts {duration:.1f} s; at most {max_seconds:.2f} s is read "
                    f"(the audio tower's positions): cut it into shorter clips"
                )
        data, source_rate = soundfile.read(source, dtype="float32", always_2d=True)  # [N, C]
    except soundfile.LibsndfileError as error:  # a RuntimeError
        raise ValueError(f"cannot decode {name}: {error.error_string}") from None
    except (soundfile.SoundFileError, TypeError, EOFError) as error:
        raise ValueError(f"cannot decode {name}: {error}") from None
    if data.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - finite.sum())
        raise ValueError(f"{name} holds {bad} non-finite samples (NaN or Inf): fix or drop it")
    mono = data.mean(axis=1)
    return torch.from_numpy(resample(mono, int(source_rate), sample_rate))


def hz_to_mel(frequency: float | np.ndarray) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: float | np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular filters equally spaced on the mel scale.

    Returns:
        ``[n_mels, n_fft // 2 + 1]``; filter ``m`` peaks (value 1) at the ``m+1``-th of
        ``n_mels + 2`` mel-spaced points between ``f_min`` and ``f_max``.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # [M+2]
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # [F] true FFT bin frequencies
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


MAX_AUDIO_FRAMES = 4096
"""Log-mel frames the audio tower has positions for (40.95 s at the default 10 ms hop)."""


def max_audio_seconds(log_mel: LogMel, max_frames: int = MAX_AUDIO_FRAMES) -> float:
    """The longest clip (seconds) whose log-mel has at most ``max_frames`` frames."""
    return (max_frames - 1) * log_mel.hop_length / log_mel.sample_rate


class LogMel(torch.nn.Module):
    """Waveform ``[..., N]`` -> log-mel ``[..., n_mels, frames]`` with ``frames = N // hop + 1``.

    Defaults: 25 ms Hann window, 10 ms hop at 16 kHz, 64 mel bands; ``log(mel + 1e-6)``.
    """

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = (
            sample_rate,
            n_fft,
            hop_length,
            n_mels,
        )
        self.window: torch.Tensor
        self.filterbank: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer(
            "filterbank", mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max), persistent=False
        )

    def frames(self, samples: int) -> int:
        """Number of output frames for ``samples`` input samples."""
        return samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrogram; see the class docstring for shapes. Computed outside any
        autocast the caller runs under (the harness and a server run under the model's): the
        front end is data preparation, and features made for a question or a corruption curve
        must match the cached fp32 ones the model trained on."""
        with torch.autocast(waveform.device.type, enabled=False):
            return self._logmel(waveform)

    def _logmel(self, waveform: torch.Tensor) -> torch.Tensor:
        leading = waveform.shape[:-1]
        flat = waveform.reshape(-1, waveform.shape[-1])
        spectrum = torch.stft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # [B, F, frames]
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.matmul(self.filterbank, power)  # [B, n_mels, frames]
        logmel = torch.log(mel + 1e-6)
        return logmel.reshape(*leading, self.n_mels, logmel.shape[-1])


def seconds_to_frames(seconds: float, hop_length: int = 160, sample_rate: int = 16_000) -> int:
    """Log-mel frames covering ``seconds`` of audio (centered STFT)."""
    return math.floor(seconds * sample_rate) // hop_length + 1
