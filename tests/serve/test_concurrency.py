"""A streamed generation does not hold up other requests; Whisper serves real speech."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.serve.conftest import LiveServer, data_url
from trimodal.data.manifest import load_manifest
from trimodal.inference import Model
from trimodal.serve.app import create_app
from trimodal.serve.engine import Engine
from trimodal.towers.whisper import normalize_transcript
from trimodal.world.generate import WorldSummary

SPEECH = Path("/usr/share/pocketsphinx/test/data")


def test_embeddings_answer_while_a_reply_streams(
    decoder_server: LiveServer, tiny_world: tuple[Path, WorldSummary]
) -> None:
    sample = load_manifest(tiny_world[0] / "manifest.jsonl").split("test")[0]
    assert sample.image is not None
    body = {
        "model": "tiny-generate",
        "stream": True,
        "temperature": 0,
        "max_tokens": 150,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": data_url(sample.image)}}],
            }
        ],
    }
    with (
        httpx.Client(base_url=decoder_server.url, timeout=60) as streaming,
        httpx.stream(
            "POST", f"{decoder_server.url}/v1/chat/completions", json=body, timeout=60
        ) as reply,
    ):
        events = reply.iter_lines()
        first = next(line for line in events if line.startswith("data: "))
        assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        embedded = streaming.post(
            "/v1/embeddings", json={"model": "tiny-generate", "input": "a red circle"}
        )
        assert embedded.status_code == 200  # answered while the stream is still open
        rest = [line for line in events if line.startswith("data: ")]
        assert rest[-1] == "data: [DONE]"
        finishes = [json.loads(line[6:])["choices"][0]["finish_reason"] for line in rest[:-1]]
        assert finishes[-1] in ("stop", "length")


def test_whisper_transcribes_real_speech_through_the_api(head_model: Model) -> None:
    pytest.importorskip("faster_whisper")
    if not SPEECH.is_dir():
        pytest.skip("pocketsphinx-testdata is not installed")
    engine = Engine(head_model, "tiny", whisper="tiny.en")
    with LiveServer(create_app(engine)) as server:
        api = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        assert "whisper-tiny.en" in [m.id for m in api.models.list().data]
        assert api.models.retrieve("whisper-tiny.en").id == "whisper-tiny.en"
        with (SPEECH / "cards" / "003.wav").open("rb") as clip:
            heard = api.audio.transcriptions.create(model="whisper-tiny.en", file=clip)
    assert normalize_transcript(heard.text).startswith("seven of")
