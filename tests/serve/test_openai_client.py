"""Every endpoint through the official ``openai`` client against a live server, each answer
checked against the same model called in-process (the oracle)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from openai import OpenAI

from tests.serve.conftest import LiveServer, data_url, wav_base64
from trimodal.data.manifest import load_manifest
from trimodal.data.transforms import load_audio
from trimodal.generation.chat import Turn
from trimodal.inference import Model
from trimodal.world.generate import WorldSummary


def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def scene(tiny_world: tuple[Path, WorldSummary]) -> tuple[Path, str, Path]:
    """A test scene's image, its first question and that question's spoken file."""
    sample = load_manifest(tiny_world[0] / "manifest.jsonl").split("test")[0]
    question = sample.questions[0]
    assert sample.image is not None and question.spoken_question is not None
    return sample.image, question.question, question.spoken_question


def test_models_lists_the_checkpoint_and_says_where_answers_come_from(
    head_server: LiveServer, decoder_server: LiveServer
) -> None:
    (head,) = client(head_server).models.list().data
    assert head.id == "tiny"
    card = head.model_extra["trimodal"]
    assert card["answers_from"] == "answer_head"
    assert card["modalities"] == ["text", "image", "audio"]
    assert "no decoder" in card["answers_from_note"]
    (decoder,) = client(decoder_server).models.list().data
    assert decoder.model_extra["trimodal"]["answers_from"] == "decoder"
    assert client(head_server).models.retrieve("tiny").id == "tiny"


def test_chat_with_an_image_answers_as_the_model_does(
    head_server: LiveServer, head_model: Model, scene: tuple[Path, str, Path]
) -> None:
    image, question, _ = scene
    reply = client(head_server).chat.completions.create(
        model="tiny",
        n=3,
        messages=[
            {"role": "system", "content": "You are helpful."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": data_url(image)}},
                ],
            },
        ],
    )
    expected = head_model.ask(image, text=question, top=3)
    assert [c.message.content for c in reply.choices] == [a for a, _ in expected]
    probabilities = [c.model_extra["trimodal"]["probability"] for c in reply.choices]
    np.testing.assert_allclose(probabilities, [p for _, p in expected], atol=1e-5)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.system_fingerprint == "trimodal-answer_head"


def test_a_spoken_question_and_multi_turn_history(
    head_server: LiveServer, head_model: Model, scene: tuple[Path, str, Path]
) -> None:
    image, question, spoken = scene
    audio = wav_base64(load_audio(spoken).numpy())
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url(image)}},
                {"type": "text", "text": question},
            ],
        },
        {"role": "assistant", "content": "something"},
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}],
        },
    ]
    reply = client(head_server).chat.completions.create(model="tiny", messages=messages)
    ((answer, _),) = head_model.ask(image, audio=spoken)
    assert reply.choices[0].message.content == answer


def test_streamed_chat_equals_the_whole_reply(
    decoder_server: LiveServer, decoder_model: Model, scene: tuple[Path, str, Path]
) -> None:
    image = scene[0]
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(image)}}]}
    ]
    api = client(decoder_server)
    whole = api.chat.completions.create(
        model="tiny-generate", messages=messages, temperature=0, max_tokens=12
    )
    chunks = list(
        api.chat.completions.create(
            model="tiny-generate",
            messages=messages,
            temperature=0,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = decoder_model.chat([Turn("user", image=image)], max_new_tokens=12)
    assert whole.choices[0].message.content == expected
    assert streamed == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]


def test_sampling_with_a_seed_repeats_and_n_gives_choices(
    decoder_server: LiveServer, scene: tuple[Path, str, Path]
) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": data_url(scene[0])}}],
        }
    ]
    api = client(decoder_server)
    options = {
        "model": "tiny-generate",
        "messages": messages,
        "temperature": 1.5,
        "seed": 7,
        "n": 3,
        "max_tokens": 8,
    }
    first, second = api.chat.completions.create(**options), api.chat.completions.create(**options)
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    assert len(first.choices) == 3 and [c.index for c in first.choices] == [0, 1, 2]


def test_stop_sequences_cut_the_reply(
    decoder_server: LiveServer, decoder_model: Model, scene: tuple[Path, str, Path]
) -> None:
    full = decoder_model.chat([Turn("user", image=scene[0])], max_new_tokens=12)
    assert len(full) >= 2, f"the tiny decoder said too little to cut: {full!r}"
    stop = full[len(full) // 2 :][:2]
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": data_url(scene[0])}}],
        }
    ]
    api = client(decoder_server)
    for stream in (False, True):
        reply = api.chat.completions.create(
            model="tiny-generate",
            messages=messages,
            temperature=0,
            max_tokens=12,
            stop=["zzz", stop],
            stream=stream,
        )
        text = (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else reply.choices[0].message.content
        )
        assert text == full[: full.find(stop)].strip()


def test_embeddings_of_every_modality_share_one_space(
    head_server: LiveServer, head_model: Model, scene: tuple[Path, str, Path]
) -> None:
    image, _, spoken = scene
    audio = wav_base64(load_audio(spoken).numpy())
    inputs = [
        "a small red circle",
        {"type": "image_url", "image_url": {"url": data_url(image)}},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
    ]
    api = client(head_server)
    as_base64 = api.embeddings.create(model="tiny", input=inputs)  # the client's default: base64
    as_float = api.embeddings.create(model="tiny", input=inputs, encoding_format="float")
    expected = torch.cat(
        [
            head_model.embed_texts(["a small red circle"]),
            head_model.embed_images([image]),
            head_model.embed_audio([spoken]),
        ]
    ).numpy()
    for reply in (as_base64, as_float):
        got = np.array([d.embedding for d in reply.data])
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert as_float.usage.prompt_tokens == len(head_model.tokenizer.encode("a small red circle"))
    single = api.embeddings.create(
        model="tiny", input="a small red circle", encoding_format="float"
    )
    np.testing.assert_allclose(single.data[0].embedding, expected[0], atol=1e-5)


def test_transcription_in_each_format(
    decoder_server: LiveServer, decoder_model: Model, scene: tuple[Path, str, Path]
) -> None:
    spoken = scene[2]
    expected = decoder_model.transcribe(spoken)
    api = client(decoder_server)
    with spoken.open("rb") as file:
        plain = api.audio.transcriptions.create(model="tiny-generate", file=file)
    assert plain.text == expected
    with spoken.open("rb") as file:
        text = api.audio.transcriptions.create(
            model="tiny-generate", file=file, response_format="text"
        )
    assert str(text).strip() == expected
    with spoken.open("rb") as file:
        verbose = api.audio.transcriptions.create(
            model="tiny-generate", file=file, response_format="verbose_json"
        )
    assert verbose.text == expected
    assert verbose.duration == pytest.approx(load_audio(spoken).numel() / 16_000, abs=1e-3)
    assert verbose.segments[0].end == verbose.duration


def test_search_finds_what_exact_search_finds(
    head_server: LiveServer, head_model: Model, gallery_folder: Path
) -> None:
    items = [json.loads(line) for line in (gallery_folder / "image.jsonl").read_text().splitlines()]
    gallery = head_model.embed_images([Path(item["file"]) for item in items]).numpy()
    query = head_model.embed_texts(["a large blue square"]).numpy()[0]
    order = np.argsort(-(gallery @ query), kind="stable")[:5]
    reply = httpx.post(
        f"{head_server.url}/v1/search",
        json={"model": "tiny", "query": "a large blue square", "modalities": ["image"], "top_k": 5},
    )
    assert reply.status_code == 200, reply.text
    hits = reply.json()["data"]
    assert [hit["item"]["id"] for hit in hits] == [items[i]["id"] for i in order]
    np.testing.assert_allclose([hit["score"] for hit in hits], (gallery @ query)[order], atol=1e-5)
    assert "file" not in hits[0]["item"]  # the server's paths stay on the server
    thumbnail = httpx.get(head_server.url + hits[0]["content_url"])
    assert (
        thumbnail.status_code == 200
        and thumbnail.content == Path(items[order[0]]["file"]).read_bytes()
    )


def test_health_and_metrics(head_server: LiveServer, scene: tuple[Path, str, Path]) -> None:
    assert httpx.get(f"{head_server.url}/health").json()["status"] == "ok"
    client(head_server).embeddings.create(model="tiny", input=["one", "two"])
    text = httpx.get(f"{head_server.url}/metrics").text
    assert 'trimodal_requests_total{route="/v1/embeddings",status="200"}' in text
    assert 'trimodal_batch_size_count{queue="embeddings"}' in text
    assert "trimodal_request_latency_seconds_bucket" in text


def test_audio_arrives_as_wav_flac_mp3_or_ogg(
    head_server: LiveServer, scene: tuple[Path, str, Path]
) -> None:
    import base64
    import io

    import soundfile

    waveform = load_audio(scene[2]).numpy()

    def encoded(kind: str, subtype: str) -> str:
        buffer = io.BytesIO()
        soundfile.write(buffer, waveform, 16_000, format=kind.upper(), subtype=subtype)
        return base64.b64encode(buffer.getvalue()).decode()

    parts = [
        {"type": "input_audio", "input_audio": {"data": encoded(kind, subtype), "format": kind}}
        for kind, subtype in (
            ("wav", "PCM_16"),
            ("flac", "PCM_16"),
            ("mp3", "MPEG_LAYER_III"),
            ("ogg", "VORBIS"),
        )
    ]
    reply = client(head_server).embeddings.create(
        model="tiny", input=parts, encoding_format="float"
    )
    wav, flac, mp3, ogg = (np.array(d.embedding) for d in reply.data)
    np.testing.assert_allclose(flac, wav, atol=1e-6)  # lossless: the same samples
    assert float(mp3 @ wav) > 0.9 and float(ogg @ wav) > 0.9  # lossy: close in the shared space


def test_a_tiny_temperature_decodes_greedily(
    decoder_server: LiveServer, scene: tuple[Path, str, Path]
) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": data_url(scene[0])}}],
        }
    ]
    api = client(decoder_server)
    greedy = api.chat.completions.create(
        model="tiny-generate", messages=messages, temperature=0, max_tokens=6
    )
    tiny = api.chat.completions.create(
        model="tiny-generate", messages=messages, temperature=1e-40, max_tokens=6
    )
    no_mass = api.chat.completions.create(
        model="tiny-generate", messages=messages, top_p=0, max_tokens=6
    )
    assert tiny.choices[0].message.content == greedy.choices[0].message.content
    assert no_mass.choices[0].message.content == greedy.choices[0].message.content
