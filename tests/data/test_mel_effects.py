"""Mel-domain audio augmentation against the same effects applied to waveforms (the log-mel of
the waveform effect is the oracle) and against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trimodal.config import ConfigError, DataConfig, load_config
from trimodal.data.audio_effects import add_noise_at_snr, pink_noise, telephone, white_noise
from trimodal.data.mel_effects import (
    AudioAugment,
    MelChannels,
    audio_augment,
    babble_power,
    log_of_power,
    mel_power,
    mix_at_snr,
    spec_mask,
    stretch_time,
)
from trimodal.data.transforms import LogMel

RATE = 16_000
FRONT_END = LogMel()
CHANNELS = MelChannels.build(64)


def _log_mel(waveform: np.ndarray) -> torch.Tensor:
    return FRONT_END(torch.from_numpy(waveform.astype(np.float32)))


def _voice(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A speech-like waveform: 20 harmonics of a gliding 110-220 Hz pitch with falling
    spectral tilt, under a syllable-rate (4 Hz) envelope, RMS about 0.1."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 110.0 + 110.0 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t + seed))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 21))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    wave = voiced * envelope
    return 0.1 * wave / np.sqrt(np.mean(wave**2))


def test_mix_at_snr_sets_the_summed_power_ratio() -> None:
    speech = torch.full((4, 10), 2.0)
    noise = torch.rand(4, 10, generator=torch.Generator().manual_seed(0)) + 0.1
    mixed = mix_at_snr(speech, noise, 10.0)
    added = mixed - speech
    assert 10 * math.log10(float(speech.sum() / added.sum())) == pytest.approx(10.0, abs=1e-4)
    assert torch.allclose(added / added.sum(), noise / noise.sum(), atol=1e-6)
    silent = torch.zeros(4, 10)
    assert torch.equal(mix_at_snr(silent, noise, 10.0), silent)


def test_power_and_log_round_trip() -> None:
    features = _log_mel(_voice(0.5))
    assert torch.allclose(log_of_power(mel_power(features)), features, atol=1e-4)
    assert bool((mel_power(torch.full((2, 2), -40.0)) == 0).all())  # below the floor: no power


@pytest.mark.parametrize(
    ("kind", "make"), [("white", white_noise), ("pink", pink_noise)], ids=["white", "pink"]
)
def test_noise_in_the_mel_domain_matches_noise_in_the_waveform(kind: str, make: object) -> None:
    voice = _voice()
    clean = _log_mel(voice)
    noise = make(len(voice), np.random.default_rng(1))  # type: ignore[operator]
    truth = _log_mel(add_noise_at_snr(voice, noise, 10.0))
    generator = torch.Generator().manual_seed(0)
    mixed = mix_at_snr(mel_power(clean), CHANNELS.noise(kind, clean.shape[1], generator), 10.0)
    ours = log_of_power(mixed)
    change = (truth - clean).abs().mean()
    assert float((ours - truth).abs().mean()) < 0.3 * float(change)
    # the per-band level (what the noise colour sets) agrees closely
    assert float((ours.mean(1) - truth.mean(1)).abs().mean()) < 0.6


def test_telephone_in_the_mel_domain_matches_the_waveform_channel() -> None:
    voice = _voice(seed=2)
    clean = _log_mel(voice)
    truth = _log_mel(telephone(voice, RATE))
    augment = AudioAugment(probability=1.0, n_mels=64)
    ours = augment._channel(clean, "telephone", [], torch.Generator().manual_seed(0))
    change = (truth - clean).abs().mean()
    # an approximation: the mu-law floor is modelled as white noise at a fixed level
    assert float((ours - truth).abs().mean()) < 0.5 * float(change)
    centres = CHANNELS.centres_hz
    in_band = torch.from_numpy((centres > 500) & (centres < 3000))
    below, above = torch.from_numpy(centres < 250), torch.from_numpy(centres > 4500)
    level, true_level, clean_level = ours.mean(1), truth.mean(1), clean.mean(1)
    assert float((level - true_level)[in_band].abs().max()) < 0.4
    assert float((level - clean_level)[below].max()) < -2.0  # both cut the lowest bands
    assert float((true_level - clean_level)[below].max()) < -2.0
    assert float((level - true_level)[above].abs().mean()) < 1.5


def test_pitch_warp_moves_a_tone_where_the_waveform_puts_it() -> None:
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(RATE // 2) / RATE) * 0.3
    higher = np.sin(2 * np.pi * 1500.0 * np.arange(RATE // 2) / RATE) * 0.3
    warped = CHANNELS.warp_pitch(_log_mel(tone), 1.5)
    expected = _log_mel(higher)
    assert int(warped.mean(1).argmax()) == int(expected.mean(1).argmax())
    assert torch.equal(CHANNELS.warp_pitch(_log_mel(tone), 1.0), _log_mel(tone))


def test_stretch_time_resamples_frames_linearly() -> None:
    ramp = torch.arange(11, dtype=torch.float32).expand(3, 11)  # (M, T): value = frame index
    faster = stretch_time(ramp, 2.0)
    assert faster.shape == (3, 6)  # round(11 / 2)
    assert torch.allclose(faster[0], torch.linspace(0, 10, 6))
    slower = stretch_time(ramp, 0.5)
    assert slower.shape == (3, 22)
    assert torch.allclose(slower[1], torch.linspace(0, 10, 22))
    assert torch.equal(stretch_time(ramp, 1.0), ramp)
    assert stretch_time(torch.ones(3, 1), 0.5).shape == (3, 2)


def test_spec_mask_fills_bands_with_the_clip_mean() -> None:
    features = torch.randn(64, 100, generator=torch.Generator().manual_seed(0))
    masked = spec_mask(features, 2, torch.Generator().manual_seed(1))
    changed = masked != features
    fill = float(features.mean())
    assert bool((masked[changed] == fill).all())
    columns = int(changed.all(dim=0).sum())
    rows = int(changed.all(dim=1).sum())
    assert columns <= 2 * 10 and rows <= 2 * 8
    assert columns + rows > 0


def test_babble_is_the_sum_of_unit_power_talkers() -> None:
    generator = torch.Generator().manual_seed(0)
    others = [_log_mel(_voice(0.5 + 0.3 * i, seed=i)) for i in range(5)]
    babble = babble_power(others, 120, 3, generator)
    assert babble.shape == (64, 120)
    assert float(babble.mean()) == pytest.approx(3.0, rel=1e-4)


def test_augment_keeps_empty_rows_and_follows_the_rate() -> None:
    features = torch.stack([_log_mel(_voice(1.0, seed=i)) for i in range(4)])  # (4, 64, 101)
    mask = torch.ones(4, features.shape[-1], dtype=torch.bool)
    mask[1] = False  # a row without audio
    mask[2, 60:] = False
    features[1] = 0.0
    augment = AudioAugment(probability=1.0, rate=0.5, pitch=2.0, masks=1)
    out, out_mask = augment(features, mask, torch.Generator().manual_seed(3))
    assert out.shape[:2] == (4, 64) and out_mask.shape == (4, out.shape[-1])
    assert int(out_mask[1].sum()) == 0 and bool((out[1] == 0).all())
    for row, frames in ((0, 101), (2, 60), (3, 101)):
        length = int(out_mask[row].sum())
        assert frames / 1.5 - 1 <= length <= frames * 1.5 + 1
        assert bool((out[row, :, length:] == 0).all())
    again, _ = augment(features, mask, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # the generator decides everything
    assert not torch.equal(out[0, :, :50], features[0, :, :50])


def test_every_channel_changes_the_clip_and_stays_finite() -> None:
    clips = [_log_mel(_voice(1.0, seed=i)) for i in range(5)]
    augment = AudioAugment(probability=1.0, snr=(10.0, 10.0))
    for kind in ("white", "pink", "babble", "telephone"):
        heard = augment._channel(clips[0], kind, clips[1:], torch.Generator().manual_seed(0))
        assert heard.shape == clips[0].shape and bool(heard.isfinite().all())
        assert float((heard - clips[0]).abs().mean()) > 0.3, kind


def test_recipe_options_build_the_augmentation_or_none() -> None:
    assert audio_augment(DataConfig()) is None
    config = load_config(
        None, ["data.audio_augment={probability: 0.5, snr: [0, 20], rate: 0.2, masks: 1}"]
    )
    augment = audio_augment(config.data)
    assert augment is not None
    assert (augment.probability, augment.snr, augment.rate, augment.masks) == (
        0.5,
        (0.0, 20.0),
        0.2,
        1,
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.audio_augment.probability=2", "probability must be in"),
        ("data.audio_augment.snr=[20, 5]", "snr must be"),
        ("data.audio_augment.rate=-1", "rate must be"),
    ],
)
def test_bad_recipe_options_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_telephone_quantization_keeps_the_same_snr_in_every_frame() -> None:
    banded = mel_power(_log_mel(_voice(seed=3))) * CHANNELS.telephone_gain[:, None]
    noise = AudioAugment(probability=1.0)._quantization(banded, torch.Generator().manual_seed(0))
    voiced = banded.sum(dim=0) > 0
    ratio_db = 10 * torch.log10(banded.sum(dim=0)[voiced] / noise.sum(dim=0)[voiced])
    assert float(ratio_db.min()) > 35.0 - 1e-3 and float(ratio_db.max()) < 45.0 + 1e-3
    assert float(ratio_db.max() - ratio_db.min()) < 1e-3  # one level for the whole clip
    above = torch.from_numpy(CHANNELS.centres_hz > 4500)
    below = torch.from_numpy((CHANNELS.centres_hz > 500) & (CHANNELS.centres_hz < 3500))
    weaker = noise[above].mean() / noise[below].mean()
    assert 1e-4 < float(weaker) < 1e-2
