"""The video modality: its file format, decoding, checks, encoder inputs and corruptions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from trimodal.config import load_config
from trimodal.modalities import get_modality, stored_modalities
from trimodal.modalities.video import (
    VideoModality,
    clip_tensor,
    frame_drop,
    gaussian_noise,
    read_frames,
    sample_indices,
    write_clip,
)

ROOT = Path(__file__).resolve().parents[2]


def _frames(count: int = 8, size: int = 64) -> np.ndarray:
    """A red square moving right by 4 px a frame on grey: ``[count, size, size, 3]``."""
    frames = np.full((count, size, size, 3), 90, dtype=np.uint8)
    for k in range(count):
        frames[k, 24:40, 4 + 4 * k : 20 + 4 * k] = (220, 40, 40)
    return frames


def _config(frames: int = 8, size: int = 32):  # type: ignore[no-untyped-def]
    overrides = [
        "model.video.depth=1",
        f"model.video.frames={frames}",
        f"model.video.frame_size={size}",
    ]
    return load_config(ROOT / "configs" / "tiny.yaml", overrides)


def test_video_is_a_stored_modality_enabled_by_its_depth() -> None:
    video = get_modality("video")
    assert isinstance(video, VideoModality) and video.manifest_field == "video"
    assert not video.enabled(load_config(ROOT / "configs" / "tiny.yaml"))
    assert video.enabled(_config())
    assert [m.name for m in stored_modalities(_config())] == ["video"]
    assert stored_modalities(load_config(ROOT / "configs" / "tiny.yaml")) == ()


def test_clips_round_trip_through_mp4_deterministically(tmp_path: Path) -> None:
    frames = _frames()
    write_clip(tmp_path / "a.mp4", frames)
    write_clip(tmp_path / "b.mp4", frames)
    digests = {hashlib.sha256((tmp_path / n).read_bytes()).digest() for n in ("a.mp4", "b.mp4")}
    assert len(digests) == 1
    decoded = np.stack(read_frames(tmp_path / "a.mp4"))
    assert decoded.shape == frames.shape
    # H.264 at crf 10 with 4:2:0 chroma: colours survive, edges blur a little
    assert float(np.abs(decoded.astype(int) - frames).mean()) < 3.0
    assert tuple(decoded[0, 32, 12]) == pytest.approx((220, 40, 40), abs=12)


def test_sampling_spreads_frames_evenly_and_keeps_both_ends() -> None:
    assert sample_indices(8, 8) == list(range(8))
    assert sample_indices(16, 4) == [0, 5, 10, 15]
    assert sample_indices(3, 5) == [0, 0, 1, 2, 2]
    assert sample_indices(1, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match="at least one frame"):
        sample_indices(0, 4)


def test_decode_gives_the_configured_fixed_shape(tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.mp4", _frames(count=12))
    stored = get_modality("video").decode(tmp_path / "clip.mp4", _config(frames=4, size=32))  # type: ignore[attr-defined]
    assert stored.shape == (4, 3, 32, 32) and stored.dtype == torch.uint8
    # the square moves right: its red mass's column centre grows frame by frame
    red = (stored[:, 0].float() > 150) & (stored[:, 1].float() < 100)
    columns = torch.arange(32).float()
    centres = [float((red[t].float().sum(0) * columns).sum() / red[t].sum()) for t in range(4)]
    assert centres == sorted(centres) and centres[-1] - centres[0] > 10


def test_clip_tensor_matches_a_naive_resize() -> None:
    frames = _frames(count=4, size=64)
    out = clip_tensor(list(frames), 4, 64)
    torch.testing.assert_close(out, torch.from_numpy(frames).permute(0, 3, 1, 2))


def test_bad_files_are_named_not_raised(tmp_path: Path) -> None:
    video = get_modality("video")
    assert "not found" in str(video.check_file(tmp_path / "missing.mp4"))  # type: ignore[attr-defined]
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 50)
    for name in ("empty.mp4", "junk.mp4"):
        problem = video.check_file(tmp_path / name)  # type: ignore[attr-defined]
        assert problem is not None and name in problem
    write_clip(tmp_path / "good.mp4", _frames())
    assert video.check_file(tmp_path / "good.mp4") is None  # type: ignore[attr-defined]


def test_inputs_are_normalized_like_images() -> None:
    stored = torch.full((2, 8, 3, 32, 32), 255, dtype=torch.uint8)
    stored[1] = 128
    (clips,) = get_modality("video").inputs(stored, _config())  # type: ignore[attr-defined]
    assert clips.shape == (2, 8, 3, 32, 32)
    torch.testing.assert_close(clips[0], torch.full_like(clips[0], (1.0 - 0.5) / 0.25))
    torch.testing.assert_close(clips[1], torch.full_like(clips[1], (128 / 255 - 0.5) / 0.25))


def test_corruptions_at_level_zero_change_nothing_and_grow_with_level() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = torch.from_numpy(_frames()).permute(0, 3, 1, 2).unsqueeze(0).contiguous()
    assert set(get_modality("video").corruptions()) == {"gaussian_noise", "frame_drop"}  # type: ignore[attr-defined]
    assert torch.equal(gaussian_noise(clips, 0.0, generator), clips)
    assert torch.equal(frame_drop(clips, 0.0, generator), clips)
    noisy = [
        gaussian_noise(clips, s, generator).float().sub(clips).abs().mean() for s in (0.05, 0.2)
    ]
    assert 0 < noisy[0] < noisy[1]
    stalled = frame_drop(clips, 1.0, generator)  # every frame replaced by the one before it
    assert all(torch.equal(stalled[0, k], clips[0, 0]) for k in range(8))


def test_decoding_stops_at_the_pixel_limit(tmp_path: Path) -> None:
    frames = _frames()
    write_clip(tmp_path / "a.mp4", frames)
    count, height, width = frames.shape[:3]
    assert len(read_frames(tmp_path / "a.mp4", max_pixels=count * height * width)) == count
    with pytest.raises(ValueError, match=r"more than \d+ decoded pixels"):
        read_frames(tmp_path / "a.mp4", max_pixels=(count - 1) * height * width)
