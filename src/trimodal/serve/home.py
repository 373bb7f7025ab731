"""The smart-home model on the chat endpoint: a reply shaped as one OpenAI tool call.

``trimodal serve --home RUN`` serves a home run as model id ``home``. A chat request to it
carries the room as an ``image_url`` part (the conversation's latest image; none: camera off)
and the command as the last user message's text or ``input_audio``. The reply's message has no
content and one ``tool_calls`` entry, function ``home_action``, whose ``arguments`` are the
outcome JSON (validated against the schema, the recipe's confirmation policy applied);
``finish_reason`` is ``tool_calls``. ``tools`` in the request are not read (the tool is fixed);
``stream`` and ``n`` above 1 are refused with a 400 naming the field.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import torch
from PIL import Image

from trimodal.home.actions import OUTCOME_SCHEMA
from trimodal.home.run import HomeRun
from trimodal.serve.completions import completion_id, parse_chat_request
from trimodal.serve.engine import Engine
from trimodal.serve.errors import bad_field

HOME_MODEL_ID = "home"
TOOL_NAME = "home_action"
FINGERPRINT = "trimodal-home"


def home_card() -> dict[str, Any]:
    """The ``/v1/models`` card of the home model, with the tool's JSON schema."""
    return {
        "id": HOME_MODEL_ID,
        "object": "model",
        "created": 0,
        "owned_by": "trimodal",
        "trimodal": {
            "modalities": ["text", "image", "audio"],
            "answers_from": "tool_call",
            "answers_from_note": (
                f"one tool call to {TOOL_NAME}: the action for the command (last user message, "
                "typed or spoken) in the room (the conversation's latest image)"
            ),
            "tool": {
                "type": "function",
                "function": {"name": TOOL_NAME, "parameters": OUTCOME_SCHEMA},
            },
        },
    }


def parse_home_request(
    body: dict[str, Any], engine: Engine
) -> tuple[Image.Image | None, str | None, torch.Tensor | None]:
    """The room image (or None), and the command's text or waveform (exactly one)."""
    if body.get("stream"):
        raise bad_field("stream", "the home model replies with one tool call; send stream false")
    if body.get("n", 1) != 1:
        raise bad_field("n", "the home model gives one answer; send n 1")
    request = parse_chat_request(body, engine, ("image", "audio"), None)
    users = [turn for turn in request.turns if turn.role == "user"]
    if not users:
        raise bad_field("messages", "holds no user message with a command")
    last = users[-1]
    images = [turn.image for turn in users if turn.image is not None]
    image = images[-1] if images else None
    where = f"messages[{len(request.turns) - 1}].content"
    if last.audio is not None:
        if last.text:
            raise bad_field(where, "send the command as text or as input_audio, not both")
        return _image(image), None, _waveform(last.audio)
    if not last.text:
        raise bad_field(where, "holds no command (text or input_audio)")
    return _image(image), last.text, None


def _image(value: Any) -> Image.Image | None:
    return value if value is None or isinstance(value, Image.Image) else None


def _waveform(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def answer(
    run: HomeRun, image: Image.Image | None, text: str | None, audio: torch.Tensor | None
) -> dict[str, Any]:
    """The outcome JSON for one request (runs the model)."""
    return run.answer(image, text, audio)


def home_body(outcome: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` object whose one choice is a ``home_action`` tool call."""
    call = {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": json.dumps(outcome)},
    }
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": HOME_MODEL_ID,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [call],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
