"""The home model on the chat endpoint: one ``home_action`` tool call, through the official
client, equal to the run's own answer in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile
import torch

from tests.serve.conftest import LiveServer, data_url, wav_base64
from trimodal.home.actions import validate_outcome
from trimodal.home.run import HomeRun
from trimodal.home.world import load_home_world
from trimodal.inference import Model
from trimodal.serve.app import create_app
from trimodal.serve.engine import Engine


@pytest.fixture(scope="module")
def served(head_model: Model, home_run: tuple[Path, Path]) -> Iterator[tuple[LiveServer, HomeRun]]:
    run = HomeRun.load(home_run[1], torch.device("cpu"))
    with LiveServer(create_app(Engine(head_model, "tiny", home=run))) as server:
        yield server, run


def _arguments(response: object) -> dict[str, object]:
    choice = response.choices[0]  # type: ignore[attr-defined]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "home_action"
    arguments = json.loads(call.function.arguments)
    validate_outcome(arguments)
    return arguments


def test_typed_spoken_and_camera_off_replies(
    served: tuple[LiveServer, HomeRun], home_run: tuple[Path, Path]
) -> None:
    from openai import OpenAI

    server, run = served
    world = home_run[0]
    row = load_home_world(world)[0]
    image, clip = world / row["image"], world / row["audio"]
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    room = {"type": "image_url", "image_url": {"url": data_url(image)}}
    typed = client.chat.completions.create(
        model="home",
        messages=[{"role": "user", "content": [room, {"type": "text", "text": "unlock the door"}]}],
    )
    assert _arguments(typed) == run.answer(image, text="unlock the door")
    waveform, rate = soundfile.read(clip, dtype="float32")
    spoken = client.chat.completions.create(
        model="home",
        messages=[
            {"role": "user", "content": [room]},
            {"role": "assistant", "content": "I see the room."},
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": wav_base64(waveform, rate), "format": "wav"},
                    }
                ],
            },
        ],
    )
    assert _arguments(spoken) == run.answer(image, audio=clip)
    blind = client.chat.completions.create(
        model="home", messages=[{"role": "user", "content": "turn everything off"}]
    )
    assert _arguments(blind) == run.answer(None, text="turn everything off")
    ids = [card.id for card in client.models.list().data]
    assert "home" in ids and "tiny" in ids


def test_home_requests_are_refused_by_field(served: tuple[LiveServer, HomeRun]) -> None:
    server, _ = served
    cases = [
        ({"stream": True, "messages": [{"role": "user", "content": "lights on"}]}, "stream"),
        ({"n": 2, "messages": [{"role": "user", "content": "lights on"}]}, "n"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, "messages"),
    ]
    for body, param in cases:
        response = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "home", **body})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
