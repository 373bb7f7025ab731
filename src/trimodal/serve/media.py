"""Decoding the media a client sends inline: images as ``data:`` URLs, audio (and the files of
stored modalities such as video) as base64. The server never fetches a URL nor reads a path a
client names; every failure is a 400 naming the request field.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from trimodal.data.transforms import MAX_IMAGE_PIXELS, decode_audio, open_image
from trimodal.serve import payload
from trimodal.serve.errors import bad_field

AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg")
"""``input_audio.format`` values (what libsndfile reads)."""
DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,"
)
FORMAT_NAME = re.compile(r"^[a-z0-9]{1,8}$")


@dataclass(frozen=True)
class MediaLimits:
    """What one request may carry.

    Attributes:
        max_image_pixels: width x height of one image (decompression bombs are refused from
            the header, before pixels are decoded).
        max_audio_seconds: duration of one clip (from its header, before it is decoded).
        max_media_bytes: decoded bytes of one item.
    """

    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_audio_seconds: float = 40.0
    max_media_bytes: int = 16 * 1024 * 1024


def decode_base64(text: object, path: str, limits: MediaLimits) -> bytes:
    """Strict base64 (standard alphabet, padding checked) -> bytes, or a 400 naming ``path``."""
    if not isinstance(text, str):
        raise bad_field(path, f"must be a base64 string, got {type(text).__name__}")
    if len(text) > (limits.max_media_bytes * 4) // 3 + 4:
        raise bad_field(path, f"is larger than {limits.max_media_bytes} bytes once decoded")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_field(path, "is not valid base64") from None
    if not data:
        raise bad_field(path, "is empty")
    return data


def image_from_url(url: object, path: str, limits: MediaLimits) -> Image.Image:
    """An ``image_url.url`` -> an RGB image. Only ``data:`` URLs with base64 are read."""
    if not isinstance(url, str):
        raise bad_field(path, f"must be a string, got {type(url).__name__}")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        raise bad_field(
            path,
            "the server never fetches URLs; send the image inline as a data: URL "
            "(data:image/png;base64,...)",
        )
    match = DATA_URL.match(url)
    if match is None or match.group("b64") is None:
        raise bad_field(path, "must be a base64 data: URL (data:image/png;base64,...)")
    return decode_image(decode_base64(url[match.end() :], path, limits), path, limits)


def decode_image(data: bytes, path: str, limits: MediaLimits) -> Image.Image:
    """Image file bytes -> an RGB image, refusing bombs, truncation and non-images (the checks
    of :func:`~trimodal.data.transforms.open_image`)."""
    try:
        return open_image(io.BytesIO(data), "the image", limits.max_image_pixels)
    except ValueError as error:
        raise bad_field(path, str(error)) from None


def waveform_from_base64(
    data: object, path: str, sample_rate: int, limits: MediaLimits
) -> torch.Tensor:
    """Base64 audio file bytes (wav, flac, mp3, ogg: what libsndfile reads) -> mono ``[N]``."""
    return decode_waveform(decode_base64(data, path, limits), path, sample_rate, limits)


def decode_waveform(data: bytes, path: str, sample_rate: int, limits: MediaLimits) -> torch.Tensor:
    """Audio file bytes -> mono waveform ``[N]`` at ``sample_rate`` (checks of
    :func:`~trimodal.data.transforms.decode_audio`), or a 400 naming ``path``."""
    try:
        return decode_audio(
            io.BytesIO(data), f"the audio of '{path}'", sample_rate, limits.max_audio_seconds
        )
    except ValueError as error:
        raise bad_field(path, str(error)) from None


def check_format(value: object, path: str, allowed: tuple[str, ...]) -> str:
    """A file-format name such as ``wav`` from ``allowed``, or a 400."""
    if not isinstance(value, str) or not FORMAT_NAME.match(value) or value not in allowed:
        raise bad_field(path, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


@contextmanager
def uploaded_file(data: bytes, suffix: str) -> Iterator[Path]:
    """Bytes written to a private temporary file (for decoders that read files, such as a
    video's); removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="trimodal-upload-") as folder:
        target = Path(folder) / f"upload.{suffix}"
        target.write_bytes(data)
        yield target


# -- content parts (chat messages and embedding inputs share them) ----------------------------
def require_modality(reads: tuple[str, ...], modality: str, path: str) -> None:
    """A 400 at ``path`` unless the model that answers reads ``modality``."""
    if modality not in reads:
        raise bad_field(path, f"this model reads {', '.join(reads)}; it takes no {modality}")


def image_part(part: dict[str, Any], path: str, limits: MediaLimits) -> Image.Image:
    """``{"type": "image_url", "image_url": {"url": "data:..."}}`` at ``path`` -> RGB image."""
    details = payload.obj(payload.require(part, "image_url", f"{path}.image_url"), path)
    url = payload.require(details, "url", f"{path}.image_url.url")
    return image_from_url(url, f"{path}.image_url.url", limits)


def audio_part(
    part: dict[str, Any], path: str, sample_rate: int, limits: MediaLimits
) -> torch.Tensor:
    """``{"type": "input_audio", "input_audio": {"data", "format"}}`` at ``path`` -> waveform."""
    details = payload.obj(payload.require(part, "input_audio", f"{path}.input_audio"), path)
    check_format(details.get("format"), f"{path}.input_audio.format", AUDIO_FORMATS)
    data = payload.require(details, "data", f"{path}.input_audio.data")
    return waveform_from_base64(data, f"{path}.input_audio.data", sample_rate, limits)
