"""Encoders: shapes, masks, padding invariance, batch equivariance."""

from __future__ import annotations

import pytest
import torch

from trimodal.config import AudioEncoderConfig, ImageEncoderConfig, TextEncoderConfig
from trimodal.modules.encoders.audio import AudioEncoder
from trimodal.modules.encoders.image import ImageEncoder
from trimodal.modules.encoders.text import TextEncoder


@pytest.mark.parametrize(
    ("kind", "channels", "tokens"),
    [("patch", [], 64), ("conv", [8, 16], 64), ("conv", [8, 16, 16], 16)],
)
def test_image_encoder_token_grid(kind: str, channels: list[int], tokens: int) -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder(
        ImageEncoderConfig(kind=kind, stem_channels=channels, depth=1, heads=2), 64, 16, 8
    ).eval()
    out = encoder(torch.randn(3, 3, 64, 64))
    assert out.tokens.shape == (3, tokens, 16) and out.mask.all() and out.pooled.shape == (3, 8)


def test_image_encoder_is_batch_equivariant() -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder(
        ImageEncoderConfig(depth=1, heads=2, stem_channels=[8, 16]), 64, 16, 8
    ).eval()
    images = torch.randn(4, 3, 64, 64)
    order = torch.tensor([3, 1, 0, 2])
    with torch.no_grad():
        assert torch.allclose(
            encoder(images[order]).pooled, encoder(images).pooled[order], atol=1e-5
        )


def test_bad_image_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"model\.image\.kind"):
        ImageEncoder(ImageEncoderConfig(kind="vit"), 64, 16, 8)
    with pytest.raises(ValueError, match="not divisible"):
        ImageEncoder(ImageEncoderConfig(kind="patch", patch_size=7), 64, 16, 8)


def test_text_encoder_ignores_padding_and_truncates() -> None:
    torch.manual_seed(0)
    encoder = TextEncoder(
        TextEncoderConfig(depth=1, heads=2, max_length=6), vocab_size=20, dim=16, embed_dim=8
    ).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 9, 9]])
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    other = ids.clone()
    other[0, 3:] = 13
    with torch.no_grad():
        a, b = encoder(ids, mask), encoder(other, mask)
    assert torch.allclose(a.pooled[0], b.pooled[0], atol=1e-6)
    long = encoder(torch.ones(1, 10, dtype=torch.long), torch.ones(1, 10, dtype=torch.bool))
    assert long.tokens.shape == (1, 6, 16)


@pytest.mark.parametrize(("subsample", "stack"), [(16, 4), (8, 8), (4, 1)])
def test_audio_encoder_lengths_masks_and_padding(subsample: int, stack: int) -> None:
    torch.manual_seed(0)
    config = AudioEncoderConfig(subsample=subsample, stack=stack, depth=1, heads=2)
    encoder = AudioEncoder(config, n_mels=8, dim=16, embed_dim=8).eval()
    features = torch.randn(2, 8, 70)
    mask = torch.zeros(2, 70, dtype=torch.bool)
    mask[0, :70] = True
    mask[1, :33] = True
    with torch.no_grad():
        out = encoder(features, mask)
        expected = [-(-70 // subsample), -(-33 // subsample)]  # ceil division
        assert out.mask.sum(1).tolist() == expected
        assert out.tokens.shape[1] == max(expected)
        # The second clip alone (no padding at all) gives the same pooled embedding.
        alone = encoder(features[1:, :, :33], mask[1:, :33])
        noisy = features.clone()
        noisy[1, :, 33:] = 50.0
        padded_noise = encoder(noisy, mask)
    assert torch.allclose(out.pooled[1], padded_noise.pooled[1], atol=1e-5)
    # Convs whose receptive field straddles the clip's end see zeros, as they do alone.
    assert torch.allclose(out.pooled[1], alone.pooled[0], atol=1e-5)
    assert torch.allclose(out.tokens[1, : expected[1]], alone.tokens[0], atol=1e-5)


def test_audio_encoder_is_loudness_invariant() -> None:
    torch.manual_seed(0)
    encoder = AudioEncoder(
        AudioEncoderConfig(depth=1, heads=2), n_mels=8, dim=16, embed_dim=8
    ).eval()
    features, mask = torch.randn(1, 8, 64), torch.ones(1, 64, dtype=torch.bool)
    with torch.no_grad():
        # A gain on the waveform is an additive constant on the log-mel.
        assert torch.allclose(
            encoder(features, mask).pooled, encoder(features + 3.0, mask).pooled, atol=1e-4
        )


def test_bad_audio_subsampling_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="subsample"):
        AudioEncoder(AudioEncoderConfig(subsample=12, stack=4), 8, 16, 8)
