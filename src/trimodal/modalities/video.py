"""Video: short clips in a standard container (MP4, H.264) -> tubelet tokens.

Files are decoded with PyAV (FFmpeg's libraries, bundled in its wheels: no system ffmpeg). A
clip is sampled to ``model.video.frames`` frames spread evenly over it and resized to
``model.video.frame_size`` pixels; the stored row is uint8 ``[frames, 3, S, S]``. The encoder
is :class:`~trimodal.modules.encoders.video.VideoEncoder`; a recipe turns it on with
``model.video.depth > 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image
from torch import nn

from trimodal.config import Config
from trimodal.data.transforms import ImageTransform
from trimodal.modalities.base import StoredModality
from trimodal.modules.encoders.video import VideoEncoder

FRAMES_PER_SECOND = 8


def write_clip(path: Path, frames: np.ndarray, fps: int = FRAMES_PER_SECOND) -> None:
    """Write RGB frames ``[T, H, W, 3]`` uint8 (H, W even) as an H.264 MP4 (yuv420p, crf 10).

    One encoder thread, so the same frames always give the same bytes.
    """
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


MAX_VIDEO_PIXELS = 256 * 1024 * 1024
"""Most decoded pixels (frames x width x height) read from one video: 768 MB of RGB, e.g.
4,000 frames of 256 x 256 or a minute of 30 fps 480p; past it a clip is refused."""


def read_frames(path: Path, max_pixels: int = MAX_VIDEO_PIXELS) -> list[np.ndarray]:
    """Every frame of the first video stream of ``path`` as RGB ``[H, W, 3]`` uint8.

    Raises:
        ValueError: no video stream, or more than ``max_pixels`` decoded pixels (counted while
            decoding, so a small file that expands to hundreds of GB stops early).
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        frames, pixels = [], 0
        for frame in container.decode(video=0):
            pixels += frame.width * frame.height
            if pixels > max_pixels:
                raise ValueError(
                    f"{path}: more than {max_pixels} decoded pixels (frames x width x height); "
                    f"cut or shrink the clip"
                )
            frames.append(frame.to_ndarray(format="rgb24"))
        return frames


def sample_indices(available: int, wanted: int) -> list[int]:
    """``wanted`` frame indices spread evenly over ``available`` frames (first and last kept;
    frames repeat when the clip is shorter)."""
    if available < 1:
        raise ValueError("a clip needs at least one frame")
    return [round(k * (available - 1) / max(1, wanted - 1)) for k in range(wanted)]


def clip_tensor(frames: list[np.ndarray], count: int, size: int) -> torch.Tensor:
    """Frames -> uint8 ``[count, 3, size, size]``: evenly sampled, resized (bilinear)."""
    picked = []
    for index in sample_indices(len(frames), count):
        image = Image.fromarray(frames[index])
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        picked.append(np.asarray(image, dtype=np.uint8))
    return torch.from_numpy(np.stack(picked)).permute(0, 3, 1, 2).contiguous()


def gaussian_noise(clips: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, ``level``) noise to pixels in [0, 1] (uint8 clips in, uint8 out)."""
    noise = torch.randn(clips.shape, generator=generator) * level * 255.0
    return (clips.float() + noise).round().clamp(0, 255).to(torch.uint8)


def frame_drop(clips: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each frame after the first, with probability ``level``, by the frame before it
    (a stalled stream)."""
    out = clips.clone()
    dropped = torch.rand(clips.shape[:2], generator=generator) < level  # (B, T)
    for step in range(1, clips.shape[1]):
        out[dropped[:, step], step] = out[dropped[:, step], step - 1]
    return out


class VideoModality(StoredModality):
    """Clips named by a manifest's ``video`` field, encoded by :class:`VideoEncoder`."""

    name = "video"
    manifest_field = "video"

    def enabled(self, config: Config) -> bool:
        return config.model.video.depth > 0

    def build_encoder(self, config: Config, vocab_size: int) -> nn.Module:
        m = config.model
        return VideoEncoder(m.video, m.dim, m.embed_dim, m.mlp_ratio, m.pool, m.position_init)

    def check_file(self, path: Path) -> str | None:
        if not path.is_file():
            return f"video file not found: {path}"
        try:
            frames = read_frames(path)
        except (av.FFmpegError, OSError, ValueError) as error:
            return f"cannot decode video {path}: {error}"
        if not frames:
            return f"video {path} has no frames"
        return None

    def decode(self, path: Path, config: Config) -> torch.Tensor:
        video = config.model.video
        return clip_tensor(read_frames(path), video.frames, video.frame_size)

    def inputs(self, stored: torch.Tensor, config: Config) -> tuple[Any, ...]:
        transform = ImageTransform(size=stored.shape[-1])
        return (transform.normalize(stored.float() / 255.0),)

    def cache_key(self, config: Config) -> str:
        video = config.model.video
        return f"video:{video.frames}x{video.frame_size}"

    def corruptions(self) -> dict[str, Any]:
        return {"gaussian_noise": gaussian_noise, "frame_drop": frame_drop}

    def example_inputs(self, config: Config, batch: int, vocab_size: int) -> tuple[Any, ...]:
        video = config.model.video
        return (torch.randn(batch, video.frames, 3, video.frame_size, video.frame_size),)
