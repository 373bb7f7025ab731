"""`serve --llava RUN`: a llava run behind the OpenAI API, replies equal to ``LlavaRun.chat``
in-process (greedy), whole or streamed, with the image reaching the LLM as its prefix."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.llava.test_run import chat_tokenizer, tiny_llm
from tests.serve.conftest import LiveServer
from trimodal.config import to_dict
from trimodal.data.manifest import load_manifest
from trimodal.generation.chat import Turn
from trimodal.inference import Model
from trimodal.llava.projector import ImagePrefix
from trimodal.llava.run import LlavaRun, LlavaSettings
from trimodal.serve.app import create_app
from trimodal.serve.backends import LlavaBackend
from trimodal.serve.engine import Engine

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def llava(tiny_run: Path, tiny_world: tuple[Path, object]) -> LlavaRun:
    captions = [s.text for s in load_manifest(tiny_world[0] / "manifest.jsonl").samples if s.text]
    llm = tiny_llm(chat_tokenizer(captions))
    model = Model.from_pretrained(tiny_run)
    dim = int(model.image_tokens([next(iter(_images(tiny_world)))]).shape[-1])
    projector = ImagePrefix(dim, llm.model.config.dim).eval()
    return LlavaRun(model, llm, projector, {"settings": to_dict(LlavaSettings())})


def _images(tiny_world: tuple[Path, object]) -> list[Path]:
    samples = load_manifest(tiny_world[0] / "manifest.jsonl").split("test")
    return [s.image for s in samples if s.image is not None]


@pytest.fixture(scope="module")
def server(head_model: Model, llava: LlavaRun) -> Iterator[LiveServer]:
    with LiveServer(create_app(Engine(head_model, "tiny", llm=LlavaBackend(llava)))) as live:
        yield live


def _data_url(path: Path) -> tuple[str, Image.Image]:
    raw = path.read_bytes()
    decoded = Image.open(io.BytesIO(raw)).convert("RGB")
    return "data:image/png;base64," + base64.b64encode(raw).decode(), decoded


def test_an_image_question_is_answered_as_in_process(
    server: LiveServer, llava: LlavaRun, tiny_world: tuple[Path, object]
) -> None:
    url, decoded = _data_url(_images(tiny_world)[0])
    api = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    card = api.models.retrieve("llava").model_extra["trimodal"]
    assert card["modalities"] == ["text", "image"] and "projector" in card["answers_from_note"]
    content = [
        {"type": "text", "text": "what is in the picture?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    messages = [{"role": "user", "content": content}]
    whole = api.chat.completions.create(
        model="llava", messages=messages, temperature=0, max_tokens=8
    )
    expected = llava.chat(
        [Turn("user", "what is in the picture?", image=decoded)], max_new_tokens=8
    )
    assert whole.choices[0].message.content == expected
    stream = api.chat.completions.create(
        model="llava", messages=messages, temperature=0, max_tokens=8, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
    # another image, another prefix: the reply is that image's own
    url2, decoded2 = _data_url(_images(tiny_world)[1])
    other = api.chat.completions.create(
        model="llava",
        temperature=0,
        max_tokens=8,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url2}}]}],
    )
    assert other.choices[0].message.content == llava.caption(decoded2, max_new_tokens=8)


def test_audio_is_refused_by_field(server: LiveServer) -> None:
    api = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(
            model="llava", messages=[{"role": "user", "content": [part]}], max_tokens=4
        )
    assert "audio" in str(refused.value)
