"""Image and audio preprocessing checked against hand-computed values and naive references."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trimodal.data.transforms import (
    ImageTransform,
    LogMel,
    hz_to_mel,
    load_audio,
    max_audio_seconds,
    mel_filterbank,
    mel_to_hz,
    seconds_to_frames,
)

# ---------------------------------------------------------------------------------------------
# Images


def _gradient_image(size: int = 64) -> Image.Image:
    """An image whose pixels all differ, so any shift changes the tensor."""
    y, x = np.mgrid[0:size, 0:size]
    array = np.stack([x * 255 // (size - 1), y * 255 // (size - 1), (x + y) % 256], axis=-1)
    return Image.fromarray(array.astype(np.uint8), mode="RGB")


def test_solid_colour_normalizes_exactly() -> None:
    colour = (255, 0, 128)
    out = ImageTransform()(Image.new("RGB", (64, 64), colour))
    assert out.shape == (3, 64, 64)
    assert out.dtype == torch.float32
    for channel, value in enumerate(colour):
        expected = ((value / 255.0) - 0.5) / 0.25
        torch.testing.assert_close(out[channel], torch.full((64, 64), expected), atol=1e-6, rtol=0)
    # hand values: 255 -> +2, 0 -> -2, 128 -> (128/255 - 1/2) * 4 = (0.5/255) * 4 = 2/255
    assert out[0, 0, 0].item() == pytest.approx(2.0)
    assert out[1, 0, 0].item() == pytest.approx(-2.0)
    assert out[2, 0, 0].item() == pytest.approx(0.0078431, abs=1e-6)


def test_load_from_path_resizes_and_converts_to_rgb(tmp_path: Path) -> None:
    # A 32x32 palette ("P") image: left half red, right half blue.
    array = np.zeros((32, 32, 3), dtype=np.uint8)
    array[:, :16] = (255, 0, 0)
    array[:, 16:] = (0, 0, 255)
    path = tmp_path / "halves.png"
    Image.fromarray(array, mode="RGB").convert("P").save(path)

    pixels = ImageTransform(size=64).load(path)
    assert pixels.shape == (3, 64, 64)
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    # Output column j samples input x = (j + 0.5) / 2 - 0.5, so columns 0..30 see only red
    # inputs, 33..63 only blue, and 31 (x = 15.25) / 32 (x = 15.75) mix 3:1 and 1:3.
    torch.testing.assert_close(pixels[:, :, :31], _solid(3, 64, 31, (1.0, 0.0, 0.0)))
    torch.testing.assert_close(pixels[:, :, 33:], _solid(3, 64, 31, (0.0, 0.0, 1.0)))
    one_level = 1 / 255 + 1e-6
    torch.testing.assert_close(
        pixels[:, :, 31], _solid(3, 64, 1, (0.75, 0.0, 0.25))[:, :, 0], atol=one_level, rtol=0
    )
    torch.testing.assert_close(
        pixels[:, :, 32], _solid(3, 64, 1, (0.25, 0.0, 0.75))[:, :, 0], atol=one_level, rtol=0
    )


def _solid(c: int, h: int, w: int, values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(c, 1, 1).expand(c, h, w)


def test_solid_resize_keeps_colour_and_custom_size() -> None:
    out = ImageTransform(size=16).load(Image.new("RGB", (32, 32), (10, 200, 30)))
    assert out.shape == (3, 16, 16)
    torch.testing.assert_close(out, _solid(3, 16, 16, (10 / 255, 200 / 255, 30 / 255)))


def test_grayscale_and_rgba_become_three_channels() -> None:
    gray = ImageTransform().load(Image.new("L", (64, 64), 51))
    assert gray.shape == (3, 64, 64)
    torch.testing.assert_close(gray, torch.full((3, 64, 64), 51 / 255))
    rgba = ImageTransform().load(Image.new("RGBA", (64, 64), (0, 255, 0, 10)))
    torch.testing.assert_close(rgba, _solid(3, 64, 64, (0.0, 1.0, 0.0)))


def test_no_augment_is_deterministic() -> None:
    image = _gradient_image()
    transform = ImageTransform()
    first, second = transform(image), transform(image)
    assert torch.equal(first, second)
    expected = (
        torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1) - 0.5
    ) / 0.25
    torch.testing.assert_close(first, expected)


def test_augment_keeps_shape_and_is_seeded() -> None:
    image = _gradient_image()
    transform = ImageTransform(augment=True)
    outputs = []
    for seed in range(6):
        a = transform(image, generator=torch.Generator().manual_seed(seed))
        b = transform(image, generator=torch.Generator().manual_seed(seed))
        assert a.shape == (3, 64, 64)
        assert torch.equal(a, b)
        # pixels are clamped to [0, 1] before normalizing: (0 - .5)/.25 .. (1 - .5)/.25
        assert float(a.min()) >= -2.0 - 1e-6 and float(a.max()) <= 2.0 + 1e-6
        outputs.append(a)
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])
    assert not torch.equal(outputs[0], ImageTransform()(image))


def test_augment_on_small_input_still_gives_target_size() -> None:
    transform = ImageTransform(size=64, augment=True, max_shift=5)
    out = transform(
        Image.new("RGB", (20, 10), (1, 2, 3)), generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == (3, 64, 64)


# ---------------------------------------------------------------------------------------------
# Audio loading


def test_load_audio_stereo_44k_to_mono_16k(tmp_path: Path, make_wav) -> None:
    rate, seconds, freq = 44_100, 0.5, 440.0
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    stereo = np.stack([tone, tone], axis=1)
    path = make_wav(tmp_path / "tone.wav", data=stereo, rate=rate, subtype="PCM_16")

    waveform = load_audio(path, 16_000)

    assert waveform.dtype == torch.float32
    assert waveform.ndim == 1
    assert abs(waveform.shape[0] - 8000) <= 1  # 22050 * 16000 / 44100
    signal = waveform.numpy().astype(np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    peak_hz = np.argmax(spectrum) * 16_000 / signal.size
    assert abs(peak_hz - freq) <= 16_000 / signal.size
    # amplitude survives the resampler (ignore filter edges)
    assert np.max(np.abs(signal[500:-500])) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_audio_refuses_non_finite_samples_naming_the_file(
    tmp_path: Path, make_wav, bad: float
) -> None:
    x = np.zeros(1600)
    x[[10, 20]] = bad
    path = make_wav(tmp_path / "poisoned.wav", data=x, rate=16_000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"poisoned\.wav holds 2 non-finite samples"):
        load_audio(path)


def test_load_audio_refuses_a_file_without_samples(tmp_path: Path, make_wav) -> None:
    path = make_wav(tmp_path / "empty.wav", data=np.zeros(0), rate=16_000)
    with pytest.raises(ValueError, match=r"audio file .*empty\.wav has no samples"):
        load_audio(path)


def test_load_audio_refuses_clips_longer_than_the_limit_naming_both(
    tmp_path: Path, make_wav
) -> None:
    path = make_wav(tmp_path / "long.wav", data=np.zeros(32_000), rate=16_000)  # 2 s
    assert load_audio(path, max_seconds=2.0).shape == (32_000,)
    with pytest.raises(ValueError, match=r"long\.wav lasts 2\.0 s; at most 1\.50 s is read"):
        load_audio(path, max_seconds=1.5)


def test_the_audio_limit_is_the_towers_frames_in_seconds() -> None:
    assert max_audio_seconds(LogMel()) == pytest.approx(4095 * 160 / 16_000)  # 40.95 s
    assert max_audio_seconds(LogMel(), max_frames=101) == pytest.approx(1.0)


def test_load_audio_averages_channels(tmp_path: Path, make_wav) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, 4000)
    path = make_wav(tmp_path / "opposed.wav", data=np.stack([x, -x], axis=1), rate=16_000)
    assert np.max(np.abs(load_audio(path).numpy())) < 1e-6

    y = rng.uniform(-0.5, 0.5, 4000)
    path = make_wav(tmp_path / "mixed.wav", data=np.stack([x, y], axis=1), rate=16_000)
    np.testing.assert_allclose(load_audio(path).numpy(), (x + y) / 2, atol=1e-6)


def test_load_audio_same_rate_is_identity(tmp_path: Path, make_wav) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, 1234).astype(np.float32)
    path = make_wav(tmp_path / "mono.wav", data=x, rate=16_000)
    np.testing.assert_array_equal(load_audio(path, 16_000).numpy(), x)


def test_load_audio_upsamples(tmp_path: Path, make_wav) -> None:
    path = make_wav(tmp_path / "8k.wav", samples=4000, rate=8_000)
    assert abs(load_audio(path, 16_000).shape[0] - 8000) <= 1


# ---------------------------------------------------------------------------------------------
# Mel scale and filterbank


def test_hz_to_mel_known_values() -> None:
    assert float(hz_to_mel(700.0)) == pytest.approx(2595.0 * math.log10(2.0), rel=1e-12)
    assert float(hz_to_mel(0.0)) == 0.0
    assert float(hz_to_mel(1000.0)) == pytest.approx(2595 * math.log10(1 + 1000 / 700))
    assert float(mel_to_hz(2595.0)) == pytest.approx(700.0 * 9.0)


def test_mel_round_trip() -> None:
    freqs = np.array([0.0, 20.0, 440.0, 1000.0, 4000.0, 7999.5, 22050.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs)), freqs, rtol=1e-12, atol=1e-9)
    for f in freqs:
        assert float(mel_to_hz(hz_to_mel(f))) == pytest.approx(f, abs=1e-9)


def _naive_filterbank(
    n_mels: int, n_fft: int, sr: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """Triangle by triangle, bin by bin, from the HTK formula."""
    f_max = sr / 2 if f_max is None else f_max

    def mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    def hz(m: float) -> float:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    lo, hi = mel(f_min), mel(f_max)
    points = [hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    n_bins = n_fft // 2 + 1
    out = np.zeros((n_mels, n_bins))
    for m in range(n_mels):
        left, centre, right = points[m], points[m + 1], points[m + 2]
        for k in range(n_bins):
            f = k * sr / n_fft  # centre frequency of rfft bin k
            if left < f <= centre:
                out[m, k] = (f - left) / (centre - left)
            elif centre < f < right:
                out[m, k] = (right - f) / (right - centre)
    return out


@pytest.mark.parametrize(
    ("n_mels", "n_fft", "sr", "f_min", "f_max"),
    [(64, 400, 16_000, 0.0, None), (8, 64, 8_000, 0.0, None), (20, 512, 22_050, 50.0, 8000.0)],
)
def test_mel_filterbank_matches_naive(n_mels, n_fft, sr, f_min, f_max) -> None:
    bank = mel_filterbank(n_mels, n_fft, sr, f_min, f_max)
    assert bank.shape == (n_mels, n_fft // 2 + 1)
    assert bank.dtype == torch.float32
    assert float(bank.min()) >= 0.0
    assert float(bank.max()) <= 1.0 + 1e-6
    np.testing.assert_allclose(
        bank.numpy(), _naive_filterbank(n_mels, n_fft, sr, f_min, f_max), atol=1e-6
    )


def test_mel_filterbank_odd_n_fft_uses_true_bin_frequencies() -> None:
    bank = mel_filterbank(16, 401, 16_000)
    np.testing.assert_allclose(bank.numpy(), _naive_filterbank(16, 401, 16_000), atol=1e-6)


def test_mel_filterbank_peaks_at_mel_spaced_centres() -> None:
    # Dense FFT bins so every triangle has a bin within one bin width of its centre.
    n_mels, n_fft, sr = 10, 4096, 16_000
    bank = mel_filterbank(n_mels, n_fft, sr).numpy()
    top = 2595 * math.log10(1 + 8000 / 700)
    centres = [700 * (10 ** (top * (m + 1) / (n_mels + 1) / 2595) - 1) for m in range(n_mels)]
    bin_hz = sr / n_fft
    for m, centre in enumerate(centres):
        peak = int(np.argmax(bank[m]))
        assert abs(peak * bin_hz - centre) <= bin_hz, (m, peak * bin_hz, centre)
        assert bank[m, peak] > 0.95
        # zero outside the neighbours' centres
        below = centres[m - 1] if m > 0 else 0.0
        above = centres[m + 1] if m + 1 < n_mels else 8000.0
        freqs = np.arange(bank.shape[1]) * bin_hz
        assert np.all(bank[m][(freqs <= below) | (freqs >= above)] < 1e-9)


def test_adjacent_filters_sum_to_one_inside_the_band() -> None:
    bank = mel_filterbank(16, 1024, 16_000).numpy()
    top = 2595 * math.log10(1 + 8000 / 700)
    first = 700 * (10 ** (top / 17 / 2595) - 1)
    last = 700 * (10 ** (top * 16 / 17 / 2595) - 1)
    freqs = np.arange(513) * 16_000 / 1024
    inside = (freqs >= first) & (freqs <= last)
    np.testing.assert_allclose(bank.sum(axis=0)[inside], 1.0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Log-mel spectrogram


@pytest.mark.parametrize("samples", [400, 1600, 1601, 1759, 8000])
def test_logmel_frame_count(samples: int) -> None:
    log_mel = LogMel()
    out = log_mel(torch.zeros(samples))
    assert out.shape == (64, samples // 160 + 1)
    assert log_mel.frames(samples) == samples // 160 + 1
    # silence: log(0 + 1e-6)
    torch.testing.assert_close(out, torch.full_like(out, math.log(1e-6)))


def test_logmel_keeps_leading_dims() -> None:
    log_mel = LogMel(n_mels=32)
    x = torch.randn(2, 3, 1000, generator=torch.Generator().manual_seed(0))
    out = log_mel(x)
    assert out.shape == (2, 3, 32, 1000 // 160 + 1)
    torch.testing.assert_close(out[1, 2], log_mel(x[1, 2]))


def test_seconds_to_frames() -> None:
    assert seconds_to_frames(1.0) == 101
    assert seconds_to_frames(0.5) == 51
    assert seconds_to_frames(0.0) == 1
    assert seconds_to_frames(1.0, hop_length=320, sample_rate=8000) == 26


def test_logmel_pure_tone_lands_in_nearest_mel_bin() -> None:
    sr, n_mels = 16_000, 64
    t = np.arange(sr) / sr
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32))
    out = LogMel(sample_rate=sr, n_mels=n_mels)(tone)
    middle = out[:, out.shape[1] // 2]

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    centres = hz(np.linspace(mel(np.array(0.0)), mel(np.array(8000.0)), n_mels + 2))[1:-1]
    expected = int(np.argmin(np.abs(centres - 1000.0)))
    assert int(torch.argmax(middle)) == expected
    # the tone's energy dwarfs leakage into far-away bands
    assert float(middle[expected] - middle[expected + 10]) > 5.0


def _naive_logmel(signal: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    padded = np.concatenate([np.zeros(n_fft // 2), signal, np.zeros(n_fft // 2)])
    n_frames = 1 + (padded.size - n_fft) // hop
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [frames, F]
    bank = _naive_filterbank(n_mels, n_fft, sr)  # [n_mels, F]
    return np.log(bank @ power.T + 1e-6)  # [n_mels, frames]


@pytest.mark.parametrize(
    ("sr", "n_fft", "hop", "n_mels"), [(16_000, 400, 160, 64), (8000, 256, 100, 20)]
)
def test_logmel_matches_naive_numpy(sr: int, n_fft: int, hop: int, n_mels: int) -> None:
    signal = np.random.default_rng(42).uniform(-0.5, 0.5, 3217)
    out = LogMel(sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)(
        torch.from_numpy(signal.astype(np.float32))
    )
    reference = _naive_logmel(signal.astype(np.float32).astype(np.float64), sr, n_fft, hop, n_mels)
    assert out.shape == reference.shape == (n_mels, 3217 // hop + 1)
    np.testing.assert_allclose(out.numpy(), reference, atol=1e-3, rtol=0)


def test_load_audio_names_a_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"audio file not found: .*absent\.wav"):
        load_audio(tmp_path / "absent.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav")
    with pytest.raises(ValueError, match=r"cannot decode audio file .*junk\.wav: Format not"):
        load_audio(junk)


def test_audio_declaring_an_absurd_sample_rate_is_refused(tmp_path: Path) -> None:
    import soundfile

    path = tmp_path / "bomb.wav"
    soundfile.write(path, np.zeros(100, dtype=np.float32), 4_000_000)  # a resampling-filter bomb
    with pytest.raises(ValueError, match=r"declares 4000000 Hz; sample rates from 1000 to 192000"):
        load_audio(path)


def test_log_mel_ignores_the_callers_autocast() -> None:
    # Under bf16 autocast the filterbank product ran in bf16 (0.03 off the fp32 features the
    # tensor cache holds), so spoken questions and corruption curves in a bf16 evaluation
    # met other features than the model trained on.
    waveform = torch.randn(2, 16_000, generator=torch.Generator().manual_seed(0))
    log_mel = LogMel()
    plain = log_mel(waveform)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = log_mel(waveform)
    assert under_autocast.dtype == torch.float32
    assert torch.equal(under_autocast, plain)
