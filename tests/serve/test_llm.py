"""`serve --llm smollm2`: a real small LLM behind the same OpenAI API, answers equal to
``SmolLM2.chat`` in-process (greedy), streamed or whole, a photo seen through its labels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI
from PIL import Image

from tests.serve.conftest import LiveServer
from trimodal.generation.chat import Turn
from trimodal.generation.smollm2 import SmolLM2, load_smollm2
from trimodal.inference import Model
from trimodal.serve.app import create_app
from trimodal.serve.backends import PretrainedLLM
from trimodal.serve.engine import Engine
from trimodal.towers.senses import RealSenses

pytest.importorskip("transformers")
pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def llm() -> SmolLM2:
    try:
        model = load_smollm2()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    model.perceive = RealSenses()
    return model


@pytest.fixture(scope="module")
def server(head_model: Model, llm: SmolLM2) -> Iterator[LiveServer]:
    with LiveServer(create_app(Engine(head_model, "tiny", llm=PretrainedLLM(llm)))) as live:
        yield live


def test_plain_text_chat_whole_and_streamed(server: LiveServer, llm: SmolLM2) -> None:
    api = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    cards = {m.id: m for m in api.models.list().data}
    assert cards["smollm2"].model_extra["trimodal"]["answers_from"] == "decoder"
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = api.chat.completions.create(
        model="smollm2", messages=messages, temperature=0, max_tokens=12
    )
    expected = llm.chat([Turn("user", "What is the capital of France?")], max_new_tokens=12)
    assert whole.choices[0].message.content == expected
    assert "Paris" in expected
    assert whole.system_fingerprint == "trimodal-smollm2"
    stream = api.chat.completions.create(
        model="smollm2", messages=messages, temperature=0, max_tokens=12, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
    # the checkpoint is still served beside it
    assert api.models.retrieve("tiny").id == "tiny"


def test_a_photo_reaches_the_llm_as_its_labels(server: LiveServer, llm: SmolLM2) -> None:
    import base64
    import io

    skimage = pytest.importorskip("skimage.data")
    photo = Image.fromarray(skimage.chelsea())  # the cat
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    api = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = api.chat.completions.create(
        model="smollm2",
        temperature=0,
        max_tokens=16,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this photo in one sentence."},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    turn = Turn(
        "user",
        "Describe this photo in one sentence.",
        image=Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"),
    )
    assert reply.choices[0].message.content == llm.chat([turn], max_new_tokens=16)
    assert "cat" in llm.words(turn).lower()  # what the model was told it sees


def test_a_system_message_reaches_the_llm(server: LiveServer, llm: SmolLM2) -> None:
    import torch

    from trimodal.generation.sampling import generate

    system, question = "You answer in one word.", "What color is the sky on a clear day?"
    api = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    reply = api.chat.completions.create(
        model="smollm2",
        temperature=0,
        max_tokens=8,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
    )
    ids = llm.prompt_ids(
        [{"role": "system", "content": system}, {"role": "user", "content": question}]
    )
    eos = int(llm.tokenizer.eos_token_id)
    produced = generate(
        llm.model, torch.tensor([ids]), max_new_tokens=8, stop_tokens=(eos,), pad_id=eos
    )
    expected = llm.tokenizer.decode(produced[0], skip_special_tokens=True).strip()
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == len(ids)
