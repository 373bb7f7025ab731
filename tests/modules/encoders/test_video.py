"""The video encoder: token layout, time order, input checks."""

from __future__ import annotations

import pytest
import torch

from trimodal.config import VideoEncoderConfig
from trimodal.modules.encoders.video import VideoEncoder, with_differences

DIM, EMBED = 16, 8


def _encoder(**options: int) -> VideoEncoder:
    torch.manual_seed(0)
    config = VideoEncoderConfig(depth=1, heads=2, **options)
    return VideoEncoder(config, DIM, EMBED).eval()


def test_a_clip_becomes_time_major_tubelet_tokens() -> None:
    """8 frames of 32 px in tubelets of 2 x 8 x 8: 4 time steps x 16 cells = 64 tokens."""
    encoder = _encoder(frames=8, frame_size=32, tubelet=2, patch_size=8)
    out = encoder(torch.randn(3, 8, 3, 32, 32))
    assert out.tokens.shape == (3, 64, DIM)
    assert out.mask.shape == (3, 64) and bool(out.mask.all())
    assert out.pooled.shape == (3, EMBED)


def test_the_tubelet_projection_is_a_3d_patch_embedding() -> None:
    """Before positions, token (t, r, c) is the linear map of its tubelet's pixels: checked
    against a naive reference that cuts the tubelets by hand."""
    encoder = _encoder(frames=4, frame_size=16, tubelet=2, patch_size=8)
    clip = torch.randn(1, 4, 3, 16, 16)
    features = encoder.tubelets(clip.transpose(1, 2)).flatten(3).permute(0, 2, 3, 1)
    weight = encoder.tubelets.weight  # (D, 3, 2, 8, 8)
    for t in range(2):
        for r in range(2):
            for c in range(2):
                cube = clip[0, 2 * t : 2 * t + 2, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8]
                expected = (weight * cube.transpose(0, 1)).flatten(1).sum(1)
                expected = expected + encoder.tubelets.bias
                torch.testing.assert_close(features[0, t, r * 2 + c], expected, atol=1e-4, rtol=0)


def test_reversing_time_changes_the_embedding() -> None:
    """Time positions make order visible: a clip and the same clip played backwards differ
    (which way an object moves depends on it)."""
    encoder = _encoder()
    clip = torch.randn(1, 8, 3, 32, 32)
    forward = encoder(clip).pooled
    backward = encoder(clip.flip(1)).pooled
    assert not torch.allclose(forward, backward, atol=1e-4)


def test_bad_shapes_and_settings_are_clear_errors() -> None:
    encoder = _encoder()
    with pytest.raises(ValueError, match=r"expected clips \[B, 8, 3, S, S\], got \(2, 6, 3"):
        encoder(torch.randn(2, 6, 3, 32, 32))
    with pytest.raises(ValueError, match=r"frames=7 is not divisible by model.video.tubelet=2"):
        _encoder(frames=7)
    with pytest.raises(ValueError, match="frame_size=30 is not divisible"):
        _encoder(frame_size=30)


def test_the_conv_stem_gives_the_same_token_layout() -> None:
    config = VideoEncoderConfig(depth=1, heads=2, kind="conv", stem_channels=[8, 8])
    torch.manual_seed(0)
    encoder = VideoEncoder(config, DIM, EMBED).eval()
    out = encoder(torch.randn(2, 8, 3, 32, 32))
    assert out.tokens.shape == (2, 64, DIM) and out.pooled.shape == (2, EMBED)
    with pytest.raises(ValueError, match="patch_size must be 8 for a conv stem of 2 layers"):
        VideoEncoder(
            VideoEncoderConfig(kind="conv", stem_channels=[8, 8], patch_size=4), DIM, EMBED
        )
    with pytest.raises(ValueError, match=r"model.video.kind must be 'tubelet' or 'conv'"):
        VideoEncoder(VideoEncoderConfig(kind="optical_flow"), DIM, EMBED)


def test_differences_are_each_frame_minus_the_one_before() -> None:
    volume = torch.randn(2, 3, 5, 4, 4)
    out = with_differences(volume)
    assert out.shape == (2, 6, 5, 4, 4)
    torch.testing.assert_close(out[:, :3], volume)
    assert torch.equal(out[:, 3:, 0], torch.zeros(2, 3, 4, 4))
    for t in range(1, 5):
        torch.testing.assert_close(out[:, 3:, t], volume[:, :, t] - volume[:, :, t - 1])
