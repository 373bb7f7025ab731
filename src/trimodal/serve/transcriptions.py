"""``POST /v1/audio/transcriptions``: a multipart upload -> what it says.

Form fields as OpenAI's: ``file`` (wav, flac, mp3, ogg: what libsndfile reads), ``model`` (the
checkpoint's id, or ``whisper-<name>`` when the server was started with ``--whisper``),
``response_format`` (``json``, ``text`` or ``verbose_json``); ``language``, ``prompt`` and
``temperature`` are accepted and not used.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from trimodal.serve.engine import Engine
from trimodal.serve.errors import APIError, bad_field
from trimodal.serve.media import decode_waveform

RESPONSE_FORMATS = ("json", "text", "verbose_json")


async def read_form(request: Request) -> tuple[bytes, str, str]:
    """The upload's bytes, the model id and the response format (400s name the field)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_field("file", "send the audio as multipart/form-data with a 'file' field")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as error:  # multipart parser errors of many kinds
        raise bad_field("file", f"the multipart body cannot be read ({error})") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_field("file", "is required (an audio file upload)")
    model = form.get("model")
    if not isinstance(model, str) or not model:
        raise bad_field("model", "is required")
    response_format = form.get("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise bad_field(
            "response_format",
            f"must be one of {', '.join(RESPONSE_FORMATS)}, got {response_format!r}",
        )
    data = await upload.read()
    if not data:
        raise bad_field("file", "is empty")
    return data, model, str(response_format)


async def transcribe(engine: Engine, data: bytes, model_id: str) -> tuple[str, float]:
    """The transcript of an upload and its duration (seconds)."""
    if model_id not in engine.transcription_models:
        if not engine.transcription_models:
            raise bad_field(
                "model",
                "this server has no transcriber: the checkpoint has neither a transcriber nor a "
                "decoder (start it with --whisper tiny.en for Whisper)",
            )
        raise APIError(
            404,
            f"model: {model_id!r} does not transcribe here; use one of "
            f"{', '.join(engine.transcription_models)}",
            "model",
            code="model_not_found",
        )
    waveform = await asyncio.to_thread(
        decode_waveform, data, "file", engine.sample_rate, engine.limits
    )
    text = await engine.in_model_thread(lambda: engine.transcribe_now(model_id, waveform))
    return text, waveform.numel() / engine.sample_rate


def transcription_body(text: str, duration: float, response_format: str) -> dict[str, Any]:
    """``{"text"}`` or the ``verbose_json`` object with one segment over the whole clip."""
    if response_format == "json":
        return {"text": text}
    return {
        "task": "transcribe",
        "language": "english",
        "duration": round(duration, 3),
        "text": text,
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": round(duration, 3),
                "text": text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": 0.0,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
        ],
    }
