"""Malformed requests: every one gets a 4xx with OpenAI's error object naming what was wrong,
never a 5xx, and the server keeps answering."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import LiveServer, data_url, wav_base64
from trimodal.data.manifest import load_manifest
from trimodal.world.generate import WorldSummary


def png_bytes(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def image_url(tiny_world: tuple[Path, WorldSummary]) -> str:
    sample = load_manifest(tiny_world[0] / "manifest.jsonl").split("test")[0]
    assert sample.image is not None
    return data_url(sample.image)


def chat(content: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **fields}


def bad_media_cases(image_url: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """(name, chat body, expected param) for images and audio that must be refused."""
    bomb = png_bytes((20_000, 20_000), mode="1")  # 400 M pixels in a few kB
    truncated = png_bytes((64, 64))[:60]
    nan_wav = wav_base64(np.full(1600, np.nan, dtype=np.float32), subtype="FLOAT")
    long_wav = wav_base64(np.zeros(16_000 * 45, dtype=np.float32))
    empty_wav = wav_base64(np.zeros(0, dtype=np.float32))
    rate_bomb = wav_base64(np.zeros(100, dtype=np.float32), rate=4_000_000)
    url = "messages[0].content[0].image_url.url"
    audio = "messages[0].content[0].input_audio.data"

    def image(value: Any) -> dict[str, Any]:
        return chat(
            [{"type": "image_url", "image_url": {"url": value}}, {"type": "text", "text": "what?"}]
        )

    def clip(data: Any, fmt: Any = "wav") -> dict[str, Any]:
        return chat([{"type": "input_audio", "input_audio": {"data": data, "format": fmt}}])

    return [
        ("http url", image("http://example.com/cat.png"), url),
        ("https url", image("https://example.com/cat.png"), url),
        ("file url", image("file:///etc/passwd"), url),
        ("a path", image("/etc/passwd"), url),
        ("no base64 flag", image("data:image/png," + "x" * 10), url),
        ("bad base64", image("data:image/png;base64,@@@@"), url),
        ("empty base64", image("data:image/png;base64,"), url),
        ("not an image", image("data:image/png;base64," + b64(b"hello world")), url),
        ("truncated png", image("data:image/png;base64," + b64(truncated)), url),
        ("decompression bomb", image("data:image/png;base64," + b64(bomb)), url),
        ("url not a string", image(12), url),
        ("wav of NaN", clip(nan_wav), audio),
        ("45 s wav", clip(long_wav), audio),
        ("empty wav", clip(empty_wav), audio),
        ("4 MHz sample rate", clip(rate_bomb), audio),
        ("audio not base64", clip("%%%"), audio),
        ("audio bytes not audio", clip(b64(b"RIFF....WAVEjunk")), audio),
        ("png as audio", clip(b64(png_bytes((8, 8)))), audio),
        (
            "unknown audio format",
            clip(nan_wav, "aiff"),
            "messages[0].content[0].input_audio.format",
        ),
        (
            "audio format not a string",
            clip(nan_wav, 3),
            "messages[0].content[0].input_audio.format",
        ),
        (
            "two images",
            chat([{"type": "image_url", "image_url": {"url": image_url}}] * 2),
            "messages[0].content[1]",
        ),
    ]


def structural_cases(image_url: str) -> list[tuple[str, str, Any, str | None]]:
    """(name, route, JSON body, expected param) of wrong shapes and values."""
    good = chat(
        [
            {"type": "text", "text": "what color?"},
            {"type": "image_url", "image_url": {"url": image_url}},
        ]
    )
    chat_route, embed, search = "/v1/chat/completions", "/v1/embeddings", "/v1/search"
    cases: list[tuple[str, str, Any, str | None]] = [
        ("array body", chat_route, [good], "body"),
        ("string body", chat_route, "hello", "body"),
        ("no model", chat_route, {"messages": good["messages"]}, "model"),
        ("unknown model", chat_route, {**good, "model": "gpt-4o"}, "model"),
        ("no messages", chat_route, {"model": "tiny"}, "messages"),
        ("messages not a list", chat_route, {**good, "messages": "hi"}, "messages"),
        ("empty messages", chat_route, {**good, "messages": []}, "messages"),
        ("message not an object", chat_route, {**good, "messages": ["hi"]}, "messages[0]"),
        ("no role", chat_route, {**good, "messages": [{"content": "hi"}]}, "messages[0].role"),
        (
            "tool role",
            chat_route,
            {**good, "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].role",
        ),
        (
            "content a number",
            chat_route,
            {**good, "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        (
            "content missing",
            chat_route,
            {**good, "messages": [{"role": "user"}]},
            "messages[0].content",
        ),
        ("empty text", chat_route, chat(""), "messages[0].content"),
        ("empty parts", chat_route, chat([]), "messages[0].content"),
        ("part without type", chat_route, chat([{"text": "hi"}]), "messages[0].content[0].type"),
        (
            "unknown part",
            chat_route,
            chat([{"type": "video_url", "video_url": {}}]),
            "messages[0].content[0].type",
        ),
        (
            "image_url not object",
            chat_route,
            chat([{"type": "image_url", "image_url": "x"}]),
            "messages[0].content[0]",
        ),
        (
            "text not string",
            chat_route,
            chat([{"type": "text", "text": 5}]),
            "messages[0].content[0].text",
        ),
        (
            "ends with assistant",
            chat_route,
            {**good, "messages": [*good["messages"], {"role": "assistant", "content": "x"}]},
            "messages",
        ),
        ("no image for the head", chat_route, chat("what color is the star?"), "messages"),
        (
            "image but no question",
            chat_route,
            chat([{"type": "image_url", "image_url": {"url": image_url}}]),
            "messages",
        ),
        ("n zero", chat_route, {**good, "n": 0}, "n"),
        ("n huge", chat_route, {**good, "n": 10_000}, "n"),
        ("n string", chat_route, {**good, "n": "2"}, "n"),
        ("temperature 5", chat_route, {**good, "temperature": 5}, "temperature"),
        ("temperature string", chat_route, {**good, "temperature": "hot"}, "temperature"),
        ("top_p negative", chat_route, {**good, "top_p": -0.1}, "top_p"),
        ("n x max_tokens", chat_route, {**good, "n": 8, "max_tokens": 1000}, "max_tokens"),
        ("model a number", chat_route, {**good, "model": 3}, "model"),
        (
            "nine images",
            chat_route,
            {
                **good,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": image_url}},
                            {"type": "text", "text": "q"},
                        ],
                    }
                ]
                * 9,
            },
            "messages",
        ),
        ("max_tokens 0", chat_route, {**good, "max_tokens": 0}, "max_tokens"),
        ("max_tokens float", chat_route, {**good, "max_tokens": 1.5}, "max_tokens"),
        ("stream string", chat_route, {**good, "stream": "yes"}, "stream"),
        ("stop number", chat_route, {**good, "stop": 5}, "stop"),
        ("five stops", chat_route, {**good, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("empty stop", chat_route, {**good, "stop": [""]}, "stop"),
        ("seed string", chat_route, {**good, "seed": "x"}, "seed"),
        ("seed too big", chat_route, {**good, "seed": 2**70}, "seed"),
        ("stream_options list", chat_route, {**good, "stream_options": []}, "stream_options"),
        ("no input", embed, {"model": "tiny"}, "input"),
        ("empty input list", embed, {"model": "tiny", "input": []}, "input"),
        ("token ids", embed, {"model": "tiny", "input": [1, 2, 3]}, "input"),
        ("token id rows", embed, {"model": "tiny", "input": [[1, 2]]}, "input"),
        ("empty string", embed, {"model": "tiny", "input": ""}, "input"),
        ("blank in list", embed, {"model": "tiny", "input": ["ok", "  "]}, "input[1]"),
        ("number in list", embed, {"model": "tiny", "input": ["ok", 3.5]}, "input[1]"),
        (
            "unknown part",
            embed,
            {"model": "tiny", "input": [{"type": "input_smell"}]},
            "input[0].type",
        ),
        (
            "video on a model without video",
            embed,
            {
                "model": "tiny",
                "input": [
                    {"type": "input_video", "input_video": {"data": "AA==", "format": "mp4"}}
                ],
            },
            "input[0].type",
        ),
        ("too many inputs", embed, {"model": "tiny", "input": ["x"] * 300}, "input"),
        ("long text", embed, {"model": "tiny", "input": "x" * 9000}, "input"),
        (
            "hex encoding",
            embed,
            {"model": "tiny", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        ("dimensions", embed, {"model": "tiny", "input": "x", "dimensions": 7}, "dimensions"),
        ("unknown model", embed, {"model": "text-embedding-3-small", "input": "x"}, "model"),
        ("no query", search, {"model": "tiny"}, "query"),
        ("query number", search, {"model": "tiny", "query": 4}, "query"),
        ("query list", search, {"model": "tiny", "query": ["a", "b"]}, "query"),
        ("top_k 0", search, {"model": "tiny", "query": "x", "top_k": 0}, "top_k"),
        ("top_k 1000", search, {"model": "tiny", "query": "x", "top_k": 1000}, "top_k"),
        (
            "unknown modality",
            search,
            {"model": "tiny", "query": "x", "modalities": ["smell"]},
            "modalities[0]",
        ),
        (
            "modalities string",
            search,
            {"model": "tiny", "query": "x", "modalities": "image"},
            "modalities",
        ),
    ]
    return cases


def raw_cases() -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    """(name, method, path, raw body, headers) that are broken below the JSON level."""
    json_type = {"content-type": "application/json"}
    deep = b"[" * 5000 + b"]" * 5000
    return [
        ("not json", "POST", "/v1/chat/completions", b"{model: tiny", json_type),
        ("not utf-8", "POST", "/v1/chat/completions", b'{"model": "\xff\xfe"}', json_type),
        ("deep json", "POST", "/v1/embeddings", b'{"input": ' + deep + b"}", json_type),
        (
            "huge integer",
            "POST",
            "/v1/chat/completions",
            b'{"model": "tiny", "n": ' + b"9" * 5000 + b"}",
            json_type,
        ),
        ("empty body", "POST", "/v1/embeddings", b"", json_type),
        (
            "nan literal",
            "POST",
            "/v1/chat/completions",
            b'{"model": "tiny", "temperature": NaN, "messages": []}',
            json_type,
        ),
        ("unknown route", "GET", "/v1/completions", b"", {}),
        ("wrong method", "GET", "/v1/chat/completions", b"", {}),
        ("traversal", "GET", "/static/..%2F..%2Fpyproject.toml", b"", {}),
        ("unknown static", "GET", "/static/secret.txt", b"", {}),
        ("unknown item", "GET", "/v1/search/items/image/999999/content", b"", {}),
        ("item not a number", "GET", "/v1/search/items/image/abc/content", b"", {}),
        ("unknown model card", "GET", "/v1/models/gpt-4o", b"", {}),
        (
            "transcription as json",
            "POST",
            "/v1/audio/transcriptions",
            b'{"model": "tiny"}',
            json_type,
        ),
        (
            "broken multipart",
            "POST",
            "/v1/audio/transcriptions",
            b"--xx\r\nContent-Disposition: form-data",
            {"content-type": "multipart/form-data; boundary=xx"},
        ),
    ]


def assert_refused(reply: httpx.Response, name: str, param: str | None = None) -> None:
    assert 400 <= reply.status_code < 500, f"{name}: HTTP {reply.status_code} {reply.text[:300]}"
    error = reply.json()["error"]
    assert error["message"] and error["type"], name
    if param is not None:
        assert error["param"] == param, (
            f"{name}: param {error['param']!r}, message {error['message']}"
        )


def fuzzed_bodies(image_url: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """A valid request with one field replaced by junk of another shape (seeded)."""
    rng = random.Random(seed)
    junk: list[Any] = [
        None,
        0,
        -1,
        3.5,
        True,
        "",
        "x" * 50,
        [],
        [None],
        {},
        {"a": 1},
        [[[]]],
        "data:,",
        2**64,
    ]
    fields = [
        "model",
        "messages",
        "n",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "stream",
    ]
    part_fields = ["type", "text", "image_url", "url"]
    out = []
    for _ in range(count):
        body = chat(
            [
                {"type": "text", "text": "what?"},
                {"type": "image_url", "image_url": {"url": image_url}},
            ]
        )
        if rng.random() < 0.5:
            body[rng.choice(fields)] = rng.choice(junk)
            if body.get("model") is None or body.get("messages") is None:
                body.pop("model", None) if rng.random() < 0.5 else None
        else:
            part = body["messages"][0]["content"][rng.randrange(2)]
            target = part["image_url"] if "image_url" in part and rng.random() < 0.5 else part
            target[rng.choice(part_fields)] = rng.choice(junk[:-1])
        out.append(body)
    return out


def test_two_hundred_malformed_requests_get_4xx_and_the_server_lives(
    head_server: LiveServer, image_url: str
) -> None:
    sent = 0
    with httpx.Client(base_url=head_server.url, timeout=60) as http:
        for name, body, param in bad_media_cases(image_url):
            assert_refused(http.post("/v1/chat/completions", json=body), name, param)
            sent += 1
        for name, route, body, param in structural_cases(image_url):
            assert_refused(http.post(route, json=body), name, param)
            sent += 1
        for name, method, path, raw, headers in raw_cases():
            assert_refused(http.request(method, path, content=raw, headers=headers), name)
            sent += 1
        statuses = []
        for body in fuzzed_bodies(image_url, 140):
            reply = http.post("/v1/chat/completions", json=body)
            assert reply.status_code < 500, f"{json.dumps(body)[:300]} -> {reply.text[:300]}"
            if reply.status_code >= 400:
                assert_refused(reply, "fuzzed")
            statuses.append(reply.status_code)
            sent += 1
        assert statuses.count(200) < len(statuses)  # the fuzz does reach the refusals
        assert sent >= 200
        assert http.get("/health").json()["status"] == "ok"
        good = chat(
            [
                {"type": "text", "text": "what color?"},
                {"type": "image_url", "image_url": {"url": image_url}},
            ]
        )
        assert http.post("/v1/chat/completions", json=good).status_code == 200
        assert 'status="500"' not in http.get("/metrics").text


def test_transcription_refusals_name_the_form_field(
    head_server: LiveServer, decoder_server: LiveServer
) -> None:
    wav = base64.b64decode(wav_base64(np.zeros(1600, dtype=np.float32)))
    with httpx.Client(base_url=decoder_server.url, timeout=60) as http:
        cases = [
            ("no file", {"model": "tiny-generate"}, None, "file"),
            ("no model", {}, ("a.wav", wav), "model"),
            (
                "srt",
                {"model": "tiny-generate", "response_format": "srt"},
                ("a.wav", wav),
                "response_format",
            ),
            ("not audio", {"model": "tiny-generate"}, ("a.wav", b"not audio at all"), "file"),
            ("empty file", {"model": "tiny-generate"}, ("a.wav", b""), "file"),
            ("unknown model", {"model": "whisper-1"}, ("a.wav", wav), "model"),
        ]
        for name, data, file, param in cases:
            files = {"file": file} if file else {"other": ("x", b"x")}
            assert_refused(
                http.post("/v1/audio/transcriptions", data=data, files=files), name, param
            )
    reply = httpx.post(
        f"{head_server.url}/v1/audio/transcriptions",
        data={"model": "tiny"},
        files={"file": ("a.wav", wav)},
    )
    assert_refused(reply, "no transcriber", "model")
    assert "no transcriber" in reply.json()["error"]["message"]


def test_a_decoder_refuses_too_many_tokens(decoder_server: LiveServer, image_url: str) -> None:
    body = {
        "model": "tiny-generate",
        "max_tokens": 100_000,
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}}]}
        ],
    }
    reply = httpx.post(f"{decoder_server.url}/v1/chat/completions", json=body)
    assert_refused(reply, "too many tokens", "max_tokens")
    long_text = {"role": "user", "content": "red " * 400}
    reply = httpx.post(
        f"{decoder_server.url}/v1/chat/completions",
        json={**body, "max_tokens": 4, "messages": [long_text]},
    )
    assert_refused(reply, "conversation too long", "messages")
