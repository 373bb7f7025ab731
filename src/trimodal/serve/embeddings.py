"""``POST /v1/embeddings``: text as OpenAI defines it, plus images, audio and the checkpoint's
other modalities as content-part objects (our extension), all in one shared space.

``input`` is a string, an array of strings, or an array mixing strings and parts::

    {"type": "text", "text": "a small red circle"}
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}
    {"type": "input_audio", "input_audio": {"data": "<base64>", "format": "wav"}}
    {"type": "input_video", "input_video": {"data": "<base64>", "format": "mp4"}}

(``input_<modality>`` for every modality the checkpoint stores in files of its own.)
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch

from trimodal.serve import payload
from trimodal.serve.engine import EmbedItem, Engine
from trimodal.serve.errors import bad_field
from trimodal.serve.media import (
    audio_part,
    check_format,
    decode_base64,
    image_part,
    require_modality,
    uploaded_file,
)

MAX_INPUTS = 256
MAX_TEXT_CHARS = 8192


def parse_inputs(body: dict[str, Any], engine: Engine, name: str = "input") -> list[EmbedItem]:
    """The field ``name`` (``input``; ``query`` for search) as items to embed; 400s name
    ``input[i]...``."""
    value = payload.require(body, name, name)
    items = [value] if isinstance(value, str | dict) else payload.array(value, name, MAX_INPUTS)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items) or any(
        isinstance(v, list) for v in items
    ):
        raise bad_field(
            name,
            "token-id arrays are not accepted (their ids belong to another tokenizer): send text",
        )
    single = len(items) == 1 and not isinstance(value, list)
    return [
        _item(item, name if single else f"{name}[{index}]", engine)
        for index, item in enumerate(items)
    ]


def _item(value: Any, path: str, engine: Engine) -> EmbedItem:
    if isinstance(value, str):
        return EmbedItem("text", _text(value, path, engine))
    part = payload.obj(value, path)
    kind = payload.require(part, "type", f"{path}.type")
    if kind == "text":
        text = payload.string(part, "text", f"{path}.text")
        return EmbedItem("text", _text(text or "", f"{path}.text", engine))
    if kind == "image_url":
        require_modality(engine.modalities, "image", f"{path}.type")
        return EmbedItem("image", engine.prepare_image(image_part(part, path, engine.limits)))
    if kind == "input_audio":
        require_modality(engine.modalities, "audio", f"{path}.type")
        return EmbedItem("audio", audio_part(part, path, engine.sample_rate, engine.limits))
    name = kind[len("input_") :] if isinstance(kind, str) and kind.startswith("input_") else ""
    stored = engine.stored_modality(name)
    if stored is None:
        accepted = ["text", "image_url", "input_audio"]
        accepted += [f"input_{m}" for m in engine.modalities if engine.stored_modality(m)]
        raise bad_field(f"{path}.type", f"must be one of {', '.join(accepted)}, got {kind!r}")
    return EmbedItem(name, _stored_row(part, path, name, engine))


def _stored_row(part: dict[str, Any], path: str, name: str, engine: Engine) -> torch.Tensor:
    details = payload.obj(payload.require(part, f"input_{name}", f"{path}.input_{name}"), path)
    suffix = check_format(
        details.get("format"),
        f"{path}.input_{name}.format",
        ("mp4", "webm", "avi", "mkv", "mov", "gif"),
    )
    data = decode_base64(
        payload.require(details, "data", f"{path}.input_{name}.data"),
        f"{path}.input_{name}.data",
        engine.limits,
    )
    with uploaded_file(data, suffix) as file:
        try:
            return engine.decode_stored(name, file)
        except ValueError as error:
            message = str(error).replace(str(file), "the upload")
            raise bad_field(f"{path}.input_{name}.data", message) from None


def _text(text: str, path: str, engine: Engine) -> str:
    if "text" not in engine.modalities:
        raise bad_field(path, "this model has no text encoder")
    if not text.strip():
        raise bad_field(path, "is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise bad_field(path, f"has {len(text)} characters; at most {MAX_TEXT_CHARS} are read")
    return text


def embeddings_body(
    engine: Engine, items: list[EmbedItem], vectors: torch.Tensor, encoding: str
) -> dict[str, Any]:
    """The ``list`` of ``embedding`` objects, as floats or base64 little-endian float32."""
    data = []
    for index, vector in enumerate(vectors):
        values = vector.detach().to(torch.float32).cpu().numpy()
        embedding: Any = (
            base64.b64encode(values.astype("<f4").tobytes()).decode("ascii")
            if encoding == "base64"
            else [float(v) for v in values.astype(np.float64)]
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(
        len(engine.model.tokenizer.encode(item.value))
        for item in items
        if item.modality == "text" and isinstance(item.value, str)
    )
    return {
        "object": "list",
        "data": data,
        "model": engine.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def encoding_format(body: dict[str, Any]) -> str:
    """``float`` (default) or ``base64``."""
    value = payload.string(body, "encoding_format", "encoding_format", "float")
    if value not in ("float", "base64"):
        raise bad_field("encoding_format", f"must be float or base64, got {value!r}")
    return value


def check_dimensions(body: dict[str, Any], size: int) -> None:
    """``dimensions`` may only restate the shared space's size (no truncation)."""
    wanted = payload.integer(body, "dimensions", "dimensions", low=1)
    if wanted is not None and wanted != size:
        raise bad_field(
            "dimensions", f"this model's shared space has {size} dimensions, got {wanted}"
        )
