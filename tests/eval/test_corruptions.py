"""Input corruptions against hand-computed values and naive references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from trimodal.data.audio_effects import add_noise_at_snr, babble_noise, white_noise
from trimodal.eval.corruptions import fgsm, gaussian_blur, gaussian_noise, typos

CAPTION = "the red circle sits left of a small blue star while green squares hide behind it"


def measured_snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    return 10.0 * math.log10(float(np.mean(signal**2)) / float(np.mean(noise**2)))


def restricted_edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: deletions, insertions, substitutions, adjacent swaps."""
    rows = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            rows[i][j] = min(
                rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def long_text(words: int, seed: int = 0) -> str:
    vocabulary = CAPTION.split()
    rng = np.random.default_rng(seed)
    return " ".join(vocabulary[int(i)] for i in rng.integers(len(vocabulary), size=words))


# --- images: noise -----------------------------------------------------------------------------


def test_gaussian_noise_zero_sigma_is_an_identical_copy() -> None:
    images = torch.rand(2, 3, 8, 8)
    noisy = gaussian_noise(images, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, images)
    assert noisy.data_ptr() != images.data_ptr()


def test_gaussian_noise_matches_reference_and_is_deterministic() -> None:
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    before = images.clone()
    noisy = gaussian_noise(images, 0.1, torch.Generator().manual_seed(7))
    expected = images + 0.1 * torch.randn(images.shape, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(noisy, expected.clamp(0, 1))
    assert torch.equal(noisy, gaussian_noise(images, 0.1, torch.Generator().manual_seed(7)))
    assert torch.equal(images, before)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_gaussian_noise_has_the_requested_spread_away_from_the_clamp() -> None:
    images = torch.full((4, 3, 64, 64), 0.5)
    noisy = gaussian_noise(images, 0.05, torch.Generator().manual_seed(0))
    assert abs(float((noisy - images).std()) - 0.05) < 0.002


# --- images: blur ------------------------------------------------------------------------------


def scipy_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-channel scipy blur; scipy's "mirror" is torch's "reflect" (edge pixel not repeated)."""
    radius = math.ceil(3 * sigma)
    out = np.empty(images.shape)
    for b, c in np.ndindex(*images.shape[:2]):
        channel = images[b, c].double().numpy()
        out[b, c] = gaussian_filter(channel, sigma, mode="mirror", radius=radius)
    return torch.from_numpy(out)


@pytest.mark.parametrize("sigma", [0.4, 1.0, 1.1, 2.5, 6.0])
def test_gaussian_blur_matches_scipy_mirror(sigma: float) -> None:
    # sigma=1.1 has ceil(3.3)=4 but scipy's default round(3.3)=3, so the radius is passed
    # explicitly; sigma=6 has radius 18 > the 16-pixel image, so the mirror wraps more than once.
    images = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(images, sigma)
    assert blurred.shape == images.shape and blurred.dtype == images.dtype
    assert torch.allclose(blurred.double(), scipy_blur(images, sigma), atol=1e-5, rtol=0)


def test_gaussian_blur_edge_mode_is_not_scipy_reflect() -> None:
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(images, 1.5).double()
    scipy_reflect = np.stack(
        [
            gaussian_filter(images[0, c].double().numpy(), 1.5, mode="reflect", radius=5)
            for c in range(3)
        ]
    )
    assert not torch.allclose(blurred[0], torch.from_numpy(scipy_reflect), atol=1e-5)


def test_gaussian_blur_zero_sigma_copy_and_constant_image_unchanged() -> None:
    images = torch.rand(1, 3, 5, 5)
    copy = gaussian_blur(images, 0.0)
    assert torch.equal(copy, images) and copy.data_ptr() != images.data_ptr()
    constant = torch.full((1, 3, 7, 7), 0.3)
    assert torch.allclose(gaussian_blur(constant, 2.0), constant, atol=1e-6)


def test_corruptions_reject_negative_severity() -> None:
    images = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(images, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_noise(images, -0.1, torch.Generator())
    with pytest.raises(ValueError, match="epsilon"):
        fgsm(images, lambda x: x.sum(), -0.1)
    with pytest.raises(ValueError, match="rate"):
        typos("abc", 1.5, np.random.default_rng(0))


# --- images: FGSM ------------------------------------------------------------------------------


def test_fgsm_of_a_linear_loss_steps_by_epsilon_sign_of_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 4, 4, generator=generator)
    images[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # at the bounds: the clamp must hold
    weights = torch.randn(2, 3, 4, 4, generator=generator)
    weights[1, 2] = 0.0  # zero gradient: no step
    before = images.clone()
    with torch.no_grad():
        adversarial = fgsm(images, lambda x: (weights * x).sum(), 0.03)
    assert torch.equal(adversarial, (images + 0.03 * weights.sign()).clamp(0, 1))
    assert torch.equal(adversarial[1, 2], images[1, 2])
    assert not adversarial.requires_grad and adversarial.grad_fn is None
    assert torch.equal(images, before) and not images.requires_grad


def test_fgsm_increases_the_loss_of_a_linear_classifier() -> None:
    torch.manual_seed(0)
    classifier = torch.nn.Linear(3 * 4 * 4, 5)
    images = 0.2 + 0.6 * torch.rand(8, 3, 4, 4)
    labels = torch.randint(0, 5, (8,))

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(classifier(x.flatten(1)), labels)

    adversarial = fgsm(images, loss_fn, 0.02)
    with torch.no_grad():
        assert float(loss_fn(adversarial)) > float(loss_fn(images)) + 1e-3
    assert float((adversarial - images).abs().max()) <= 0.02 + 1e-7
    assert all(parameter.grad is None for parameter in classifier.parameters())
    assert torch.equal(fgsm(images, loss_fn, 0.0), images)


def test_fgsm_rejects_a_non_scalar_loss() -> None:
    with pytest.raises(ValueError, match="scalar"):
        fgsm(torch.rand(2, 3, 4, 4), lambda x: x.flatten(1).sum(1), 0.1)


# --- audio -------------------------------------------------------------------------------------


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 3.0, 20.0])
@pytest.mark.parametrize("noise_length", [100, 1000, 2500])
def test_add_noise_at_snr_is_exact(snr_db: float, noise_length: int) -> None:
    rng = np.random.default_rng(0)
    waveform = np.sin(np.linspace(0, 40, 1000)) + 0.1 * rng.standard_normal(1000)
    noise = rng.standard_normal(noise_length) + 0.3
    noisy = add_noise_at_snr(waveform, noise, snr_db)
    assert noisy.shape == waveform.shape and noisy.dtype == np.float64
    assert measured_snr_db(waveform, noisy - waveform) == pytest.approx(snr_db, rel=1e-6, abs=1e-9)
    scale = (noisy - waveform)[0] / noise[0]
    assert np.allclose(noisy - waveform, scale * np.resize(noise, 1000))  # tiled or cropped


def test_add_noise_at_snr_keeps_float32_and_inputs() -> None:
    waveform = np.linspace(-0.5, 0.5, 64, dtype=np.float32)
    noise = np.ones(10, dtype=np.float32)
    before = waveform.copy()
    noisy = add_noise_at_snr(waveform, noise, 10.0)
    assert noisy.dtype == np.float32 and np.array_equal(waveform, before)
    assert measured_snr_db(waveform.astype(np.float64), (noisy - waveform).astype(np.float64)) == (
        pytest.approx(10.0, rel=1e-4)
    )


def test_add_noise_at_snr_rejects_silence_and_zero_noise() -> None:
    with pytest.raises(ValueError, match="silent"):
        add_noise_at_snr(np.zeros(100), np.ones(100), 10.0)
    with pytest.raises(ValueError, match="noise is all zeros"):
        add_noise_at_snr(np.ones(100), np.zeros(100), 10.0)
    with pytest.raises(ValueError, match="finite"):
        add_noise_at_snr(np.ones(100), np.ones(100), math.inf)


def test_white_noise_is_deterministic_standard_normal() -> None:
    noise = white_noise(20_000, np.random.default_rng(3))
    assert noise.shape == (20_000,)
    assert np.array_equal(noise, white_noise(20_000, np.random.default_rng(3)))
    assert abs(noise.mean()) < 0.03 and abs(noise.std() - 1) < 0.03


def test_babble_of_one_talker_is_that_utterance_offset_tiled_and_unit_rms() -> None:
    utterance = np.array([3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0])
    babble = babble_noise([utterance], 30, 1, np.random.default_rng(0))
    streams = [np.resize(np.roll(utterance, -offset), 30) for offset in range(len(utterance))]
    unit_rms_streams = [stream / np.sqrt(np.mean(stream**2)) for stream in streams]
    assert sum(np.allclose(babble, stream) for stream in unit_rms_streams) == 1
    assert np.sqrt(np.mean(babble**2)) == pytest.approx(1.0, rel=1e-12)


def test_babble_offsets_vary_with_the_generator() -> None:
    utterance = np.arange(1.0, 50.0)
    starts = {babble_noise([utterance], 10, 1, np.random.default_rng(seed))[0] for seed in range(8)}
    assert len(starts) > 1


def test_babble_sums_distinct_unit_rms_talkers() -> None:
    # constant talkers normalize to +-1 whatever their offset, so the sum is known exactly
    talkers = [np.full(5, 3.0), np.full(9, -0.5), np.full(4, 0.25)]
    assert np.allclose(babble_noise(talkers, 12, 3, np.random.default_rng(0)), np.full(12, 1.0))
    two = babble_noise(talkers, 12, 2, np.random.default_rng(1))
    assert any(np.allclose(two, np.full(12, total)) for total in (0.0, 2.0))
    assert np.array_equal(two, babble_noise(talkers, 12, 2, np.random.default_rng(1)))


def test_babble_rejects_bad_count_and_silent_talkers() -> None:
    with pytest.raises(ValueError, match="count"):
        babble_noise([np.ones(4)], 10, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="count"):
        babble_noise([np.ones(4)], 10, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="silent"):
        babble_noise([np.zeros(4)], 10, 1, np.random.default_rng(0))


# --- text --------------------------------------------------------------------------------------


def test_typos_rate_zero_is_identity_and_results_are_deterministic() -> None:
    text = long_text(50)
    assert typos(text, 0.0, np.random.default_rng(0)) == text
    first = typos(text, 0.3, np.random.default_rng(5))
    assert first == typos(text, 0.3, np.random.default_rng(5))
    assert first != typos(text, 0.3, np.random.default_rng(6))


def test_typos_touch_only_letters() -> None:
    text = "a1 b2, c3! " * 40
    corrupted = typos(text, 1.0, np.random.default_rng(0))
    assert [c for c in corrupted if not c.isalpha()] == [c for c in text if not c.isalpha()]


@pytest.mark.parametrize("seed", range(5))
def test_typos_rate_one_changes_every_word(seed: int) -> None:
    # double letters and "ab"-like pairs are where naive typos cancel (swap "aa", insert+delete)
    text = long_text(300, seed) + " aa ab ba aab abab x moo zz"
    corrupted = typos(text, 1.0, np.random.default_rng(seed))
    pairs = list(zip(text.split(" "), corrupted.split(" "), strict=True))
    assert all(clean != noisy for clean, noisy in pairs)


@pytest.mark.parametrize("rate", [0.05, 0.1])
def test_typos_empirical_rate(rate: float) -> None:
    # Each typo is one edit in optimal-string-alignment distance. The distance counts slightly
    # fewer where neighbouring typos merge and letters moved by a swap get no draw of their own
    # (about 1% low at rate 0.1), hence 2% for bias on top of three binomial standard errors.
    text = long_text(10_000)
    corrupted = typos(text, rate, np.random.default_rng(0))
    edits = sum(
        restricted_edit_distance(clean, noisy)
        for clean, noisy in zip(text.split(" "), corrupted.split(" "), strict=True)
    )
    letters = sum(c.isalpha() for c in text)
    tolerance = 3 * math.sqrt((1 - rate) / (rate * letters)) + 0.02
    assert edits / letters == pytest.approx(rate, rel=tolerance)
