"""``POST /v1/chat/completions``: messages -> a reply, whole or streamed as OpenAI chunks.

A checkpoint with a decoder generates the reply from the conversation (its images and audio
become the decoder's prefix). One without a decoder answers with its answer head: the last
user message is a typed or spoken question about the conversation's latest image, and the
``n`` choices are the head's ``n`` most probable answers (sampling options do not apply).
``system`` and ``developer`` messages are read by a pretrained LLM (SmolLM2's chat template
has a system role) and not by trimodal's own models, which have no instruction channel.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from trimodal.generation.chat import Turn
from trimodal.inference import Question
from trimodal.serve import payload
from trimodal.serve.backends import ChatBackend, Prompt
from trimodal.serve.engine import Engine
from trimodal.serve.errors import APIError, bad_field
from trimodal.serve.media import audio_part, image_part, require_modality

ROLES = ("system", "developer", "user", "assistant")
MAX_MESSAGES = 64
MAX_CHOICES = 8
MAX_STOPS = 4
MAX_REPLY_TOKENS = 1024
"""Most tokens one choice may ask for (``max_tokens``)."""
MAX_TOTAL_TOKENS = 4096
"""Most tokens all ``n`` choices together may ask for (``n * max_tokens``)."""
MAX_IMAGES = 8
"""Most images one conversation may carry."""
GREEDY_BELOW = 1e-2
"""Temperatures (and ``top_p``) below this decode greedily: dividing logits by a tinier number
overflows them."""


@dataclass
class ChatRequest:
    """A validated chat request (media decoded)."""

    turns: list[Turn]
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    system: str = ""
    """The text of the ``system`` and ``developer`` messages, in order (read by models with an
    instruction channel: SmolLM2; not by trimodal's own)."""


def parse_chat_request(
    body: dict[str, Any],
    engine: Engine,
    media: tuple[str, ...],
    prepare_image: Callable[[Image.Image], Any] | None = None,
) -> ChatRequest:
    """Validate every field of a chat request (400s name the field); decodes media.

    ``media``: the modalities the model that answers reads (``image``, ``audio``);
    ``prepare_image``: applied to each decoded image (the checkpoint's transform)."""
    messages = payload.array(
        payload.require(body, "messages", "messages"), "messages", MAX_MESSAGES
    )
    turns: list[Turn] = []
    instructions: list[str] = []
    for index, message in enumerate(messages):
        read = _turn(message, f"messages[{index}]", engine, media, prepare_image)
        if isinstance(read, Turn):
            turns.append(read)
        elif read:
            instructions.append(read)
    if not turns or turns[-1].role != "user":
        raise bad_field("messages", "the last message must be the user's")
    max_tokens = payload.integer(
        body, "max_completion_tokens", "max_completion_tokens", low=1, high=MAX_REPLY_TOKENS
    )
    if max_tokens is None:
        max_tokens = payload.integer(body, "max_tokens", "max_tokens", low=1, high=MAX_REPLY_TOKENS)
    images = sum(turn.image is not None for turn in turns)
    if images > MAX_IMAGES:
        raise bad_field("messages", f"holds {images} images; at most {MAX_IMAGES} are read")
    stream_options = body.get("stream_options")
    include_usage = False
    if stream_options is not None:
        include_usage = payload.boolean(
            payload.obj(stream_options, "stream_options"),
            "include_usage",
            "stream_options.include_usage",
        )
    request = ChatRequest(
        turns=turns,
        max_tokens=max_tokens,
        temperature=payload.number(body, "temperature", "temperature", 1.0, 0.0, 2.0),
        top_p=payload.number(body, "top_p", "top_p", 1.0, 0.0, 1.0),
        stop=_stops(body.get("stop")),
        seed=payload.integer(body, "seed", "seed", low=-(2**63), high=2**63 - 1),
        n=payload.integer(body, "n", "n", default=1, low=1, high=MAX_CHOICES) or 1,
        stream=payload.boolean(body, "stream", "stream"),
        include_usage=include_usage,
        system="\n".join(instructions),
    )
    if request.n * (request.max_tokens or 64) > MAX_TOTAL_TOKENS:
        raise bad_field(
            "max_tokens",
            f"n x max_tokens = {request.n * (request.max_tokens or 64)}; at most "
            f"{MAX_TOTAL_TOKENS} tokens are generated for one request",
        )
    return request


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad_field("stop", "must be a non-empty string or an array of them")
    if len(stops) > MAX_STOPS:
        raise bad_field("stop", f"has {len(stops)} sequences; at most {MAX_STOPS} are accepted")
    return list(stops)


def _turn(
    message: Any,
    path: str,
    engine: Engine,
    media: tuple[str, ...],
    prepare_image: Callable[[Image.Image], Any] | None,
) -> Turn | str:
    """One message as a :class:`Turn`, or the text of a system/developer message."""
    message = payload.obj(message, path)
    role = payload.require(message, "role", f"{path}.role")
    if role not in ROLES:
        raise bad_field(f"{path}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    content = message.get("content")
    if role in ("system", "developer"):
        return _text_only(content, f"{path}.content")
    if content is None:
        raise bad_field(f"{path}.content", "is required")
    if isinstance(content, str):
        return Turn(role, content.strip()) if role == "assistant" else _user_turn(content, path)
    parts = payload.array(content, f"{path}.content", 16)
    if role == "assistant":
        return Turn(role, _text_only(parts, f"{path}.content"))
    return _user_parts(parts, f"{path}.content", engine, media, prepare_image)


def _user_turn(text: str, path: str) -> Turn:
    if not text.strip():
        raise bad_field(f"{path}.content", "is empty")
    return Turn("user", text.strip())


def _text_only(content: Any, path: str) -> str:
    """The text of content that may hold only text (string or text parts)."""
    if content is None or isinstance(content, str):
        return (content or "").strip()
    texts = []
    for index, part in enumerate(payload.array(content, path, 16)):
        part = payload.obj(part, f"{path}[{index}]")
        if part.get("type") not in ("text", "refusal"):
            raise bad_field(f"{path}[{index}].type", "only text parts are accepted here")
        texts.append(payload.string(part, part["type"], f"{path}[{index}].{part['type']}") or "")
    return " ".join(t.strip() for t in texts if t.strip())


def _user_parts(
    parts: list[Any],
    path: str,
    engine: Engine,
    media: tuple[str, ...],
    prepare_image: Callable[[Image.Image], Any] | None,
) -> Turn:
    """A user message's parts -> one turn: its text, at most one image and one audio."""
    texts: list[str] = []
    image: Image.Image | None = None
    audio: torch.Tensor | None = None
    for index, part in enumerate(parts):
        where = f"{path}[{index}]"
        part = payload.obj(part, where)
        kind = payload.require(part, "type", f"{where}.type")
        if kind == "text":
            texts.append(payload.string(part, "text", f"{where}.text") or "")
        elif kind == "image_url":
            require_modality(("text", *media), "image", f"{where}.type")
            if image is not None:
                raise bad_field(where, "one image per message is read; send it in a new message")
            image = image_part(part, where, engine.limits)
        elif kind == "input_audio":
            require_modality(("text", *media), "audio", f"{where}.type")
            if audio is not None:
                raise bad_field(where, "one audio clip per message is read")
            audio = audio_part(part, where, engine.sample_rate, engine.limits)
        else:
            raise bad_field(
                f"{where}.type",
                f"must be text, image_url or input_audio, got {kind!r}",
            )
    text = " ".join(t.strip() for t in texts if t.strip())
    if not text and image is None and audio is None:
        raise bad_field(path, "holds no text, image or audio")
    prepared = prepare_image(image) if image is not None and prepare_image else image
    return Turn("user", text, image=prepared, audio=audio)


# -- replies ---------------------------------------------------------------------------------
def completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop sequence, and whether one was found."""
    cuts = [index for stop in stops if (index := text.find(stop)) >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _question(turns: list[Turn]) -> Question:
    """The answer head's question: the last user turn's text or audio about the latest image."""
    images = [turn.image for turn in turns if turn.image is not None]
    if not images:
        raise bad_field(
            "messages",
            "this model answers questions about an image: attach one as an image_url part",
        )
    last = turns[-1]
    if last.text:
        return Question(images[-1], text=last.text)
    if last.audio is not None:
        return Question(images[-1], audio=last.audio)
    raise bad_field(
        "messages",
        "the last user message holds no question (text or input_audio); this model answers "
        "questions, it has no decoder to describe an image",
    )


@dataclass
class Reply:
    """The text of each choice, why it ended, and token counts."""

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    extras: list[dict[str, Any]] = field(default_factory=list)


async def reply(engine: Engine, request: ChatRequest, backend: ChatBackend | None) -> Reply:
    """The whole reply (no streaming): from ``backend``, or the answer head when None."""
    if backend is None:
        return await _head_reply(engine, request)
    prompt, max_tokens = await _prompt(engine, request, backend)
    rows = await engine.in_generation_thread(
        lambda: backend.reply_ids(prompt, request.n, max_tokens, None, **_sampling(request))
    )
    texts, reasons = [], []
    for ids in rows:
        text, stopped = cut_at_stop(backend.decode(ids).strip(), request.stop)
        texts.append(text.strip() if stopped else text)
        reasons.append("length" if len(ids) >= max_tokens and not stopped else "stop")
    return Reply(texts, reasons, prompt.length, sum(len(ids) for ids in rows))


async def _head_reply(engine: Engine, request: ChatRequest) -> Reply:
    answers = await engine.ask(_question(request.turns), top=request.n)
    texts = [cut_at_stop(answer, request.stop)[0] for answer, _ in answers]
    extras = [{"probability": round(p, 6), "answers_from": "answer_head"} for _, p in answers]
    return Reply(texts, ["stop"] * len(texts), 0, len(texts), extras)


async def _prompt(engine: Engine, request: ChatRequest, backend: ChatBackend) -> tuple[Prompt, int]:
    """The decoder's prompt and the reply length (400 when the conversation does not fit)."""
    prompt = await engine.in_generation_thread(
        lambda: backend.prompt(request.turns, request.system)
    )
    room = backend.room(prompt)
    if room < 1:
        raise bad_field(
            "messages",
            f"the conversation takes {prompt.length} positions; the decoder holds "
            f"{prompt.length + room}: send a shorter one",
        )
    if request.max_tokens is not None and request.max_tokens > room:
        raise bad_field(
            "max_tokens",
            f"{request.max_tokens} tokens do not fit: at most {room} follow this conversation",
        )
    return prompt, request.max_tokens or min(room, 64)


def _sampling(request: ChatRequest) -> dict[str, Any]:
    generator = None
    if request.seed is not None:
        generator = torch.Generator().manual_seed(request.seed % 2**63)
    if request.temperature < GREEDY_BELOW or request.top_p < GREEDY_BELOW:
        return {"do_sample": False}
    return {
        "do_sample": True,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "generator": generator,
    }


def completion_body(name: str, fingerprint: str, answer: Reply) -> dict[str, Any]:
    """The ``chat.completion`` object of model ``name``."""
    choices = []
    for index, (text, reason) in enumerate(zip(answer.texts, answer.finish_reasons, strict=True)):
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "finish_reason": reason,
            "logprobs": None,
        }
        if answer.extras:
            choice["trimodal"] = answer.extras[index]
        choices.append(choice)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": fingerprint,
        "choices": choices,
        "usage": _usage(answer.prompt_tokens, answer.completion_tokens),
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


# -- streaming ----------------------------------------------------------------------------------
class _Cancelled(Exception):
    """Raised in the generation thread to stop it (client gone, every choice stopped)."""


@dataclass
class _ChoiceStream:
    """One choice's tokens so far and the text already sent."""

    stops: list[str]
    ids: list[int] = field(default_factory=list)
    sent: str = ""
    finish: str | None = None

    def visible(self, full: str, final: bool) -> str:
        """What may be sent of ``full``: cut at a stop; hold back what a stop could start with
        and trailing spaces until the end."""
        text, stopped = cut_at_stop(full, self.stops)
        if stopped:
            self.finish = "stop"
            return text.rstrip()
        if final:
            return text.rstrip()
        holdback = max((len(s) for s in self.stops), default=1) - 1
        return text[: len(text) - holdback].rstrip() if holdback else text.rstrip()


async def stream(
    engine: Engine, request: ChatRequest, backend: ChatBackend | None, name: str, fingerprint: str
) -> AsyncIterator[str]:
    """Server-sent events: ``chat.completion.chunk`` objects, then ``[DONE]``.

    Validation that needs the model (the prompt's length) happens before the first event, so
    those errors are still plain 400s; an error after that is sent as an ``error`` event.
    """
    ident, created = completion_id(), int(time.time())

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "system_fingerprint": fingerprint,
            "choices": choices,
        }
        if request.include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    def delta(index: int, content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": content, "logprobs": None, "finish_reason": finish}

    if backend is None:
        answer = await _head_reply(engine, request)
        events = [
            chunk([delta(i, {"role": "assistant", "content": ""})])
            for i in range(len(answer.texts))
        ]
        events += [chunk([delta(i, {"content": t})]) for i, t in enumerate(answer.texts)]
        events += [chunk([delta(i, {}, "stop")]) for i in range(len(answer.texts))]
        if request.include_usage:
            events.append(chunk([], _usage(answer.prompt_tokens, answer.completion_tokens)))
        return _from_list([*events, "data: [DONE]\n\n"])

    prompt, max_tokens = await _prompt(engine, request, backend)
    return _generated(engine, backend, request, prompt, max_tokens, chunk, delta)


async def _from_list(events: list[str]) -> AsyncIterator[str]:
    for event in events:
        yield event


async def _generated(
    engine: Engine,
    backend: ChatBackend,
    request: ChatRequest,
    prompt: Prompt,
    max_tokens: int,
    chunk: Any,
    delta: Any,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[list[int] | BaseException | None] = asyncio.Queue()
    cancelled = False

    def on_token(step: torch.Tensor) -> None:
        if cancelled:
            raise _Cancelled
        loop.call_soon_threadsafe(tokens.put_nowait, step.tolist())

    def work() -> None:
        outcome: BaseException | None = None
        try:
            backend.reply_ids(prompt, request.n, max_tokens, on_token, **_sampling(request))
        except _Cancelled:
            pass
        except Exception as error:
            outcome = error
        loop.call_soon_threadsafe(tokens.put_nowait, outcome)

    choices = [_ChoiceStream(request.stop) for _ in range(request.n)]
    generation = asyncio.ensure_future(engine.in_generation_thread(work))
    eos, produced = backend.eos_id, 0
    try:
        for index in range(request.n):
            yield chunk([delta(index, {"role": "assistant", "content": ""})])
        while (step := await tokens.get()) is not None:
            if isinstance(step, BaseException):
                yield _error_event(step)
                return
            for index, (choice, token) in enumerate(zip(choices, step, strict=True)):
                if choice.finish is not None:
                    continue
                if token == eos:
                    choice.finish = "stop"
                else:
                    produced += 1  # as the whole reply counts: <eos> is not a reply token
                    choice.ids.append(token)
                for event in _advance(choice, backend.decode, index, chunk, delta, False):
                    yield event
            if all(choice.finish for choice in choices):
                cancelled = True
        for index, choice in enumerate(choices):
            if choice.finish is None:
                choice.finish = "length"
            for event in _advance(choice, backend.decode, index, chunk, delta, True):
                yield event
            yield chunk([delta(index, {}, choice.finish)])
        if request.include_usage:
            yield chunk([], _usage(prompt.length, produced))
        yield "data: [DONE]\n\n"
    finally:
        cancelled = True
        await asyncio.shield(generation)


def _advance(
    choice: _ChoiceStream, decode: Any, index: int, chunk: Any, delta: Any, final: bool
) -> list[str]:
    """The content event (if any) for a choice's newly visible text."""
    full = decode(choice.ids).lstrip()
    if full.endswith("\ufffd") and not final:
        return []  # a character still split across tokens
    visible = choice.visible(full, final or choice.finish is not None)
    if not visible.startswith(choice.sent) or visible == choice.sent:
        return []
    new, choice.sent = visible[len(choice.sent) :], visible
    return [chunk([delta(index, {"content": new})])]


def _error_event(error: BaseException) -> str:
    status = error.status if isinstance(error, APIError) else 500
    kind = "invalid_request_error" if status < 500 else "server_error"
    message = str(error) if isinstance(error, APIError | ValueError) else "generation failed"
    return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'param': None, 'code': None}})}\n\n"
