"""The FastAPI application: OpenAI-shaped routes over an :class:`~trimodal.serve.engine.Engine`.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/embeddings``,
``POST /v1/audio/transcriptions``, ``POST /v1/search`` (ours), ``GET /health``, ``GET /metrics``
and the web page at ``/``. With API keys, every ``/v1`` route needs ``Authorization: Bearer
KEY``. Every refusal is a 4xx whose body is OpenAI's error object naming the field.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from trimodal.serve import completions, embeddings, home, payload, transcriptions
from trimodal.serve.backends import ChatBackend
from trimodal.serve.engine import Engine
from trimodal.serve.errors import APIError, bad_field, error_body
from trimodal.serve.gallery import Gallery, model_fingerprint

LOG = logging.getLogger("trimodal.serve")
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_TOP_K = 100
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ROUTES = (
    "/v1/models",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/audio/transcriptions",
    "/v1/search",
    "/health",
    "/metrics",
    "/",
)


def create_app(
    engine: Engine,
    gallery: Gallery | None = None,
    api_keys: Sequence[str] = (),
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The application serving ``engine`` (and ``gallery`` for search)."""
    if gallery is not None:
        expected = model_fingerprint(engine.model)
        if gallery.info.get("fingerprint") != expected:
            raise ValueError(
                f"the gallery at {gallery.folder} was built with another checkpoint "
                f"(fingerprint {gallery.info.get('fingerprint')}, this one {expected}): "
                f"rebuild it with `trimodal index`"
            )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        await engine.close()

    app = FastAPI(
        title="trimodal", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.engine, app.state.gallery = engine, gallery
    _add_error_handlers(app, engine)
    _add_routes(app, engine, gallery)
    app.add_middleware(
        _Guard, engine=engine, api_keys=tuple(api_keys), max_body_bytes=max_body_bytes
    )
    return app


# -- the guard: body size, API keys, metrics ------------------------------------------------
class _Guard:
    """Pure ASGI middleware: refuses oversized bodies (413) and missing or wrong keys (401)
    before any route runs, and counts every request for ``/metrics``."""

    def __init__(
        self, app: ASGIApp, engine: Engine, api_keys: tuple[str, ...], max_body_bytes: int
    ):
        self.app, self.engine, self.limit = app, engine, max_body_bytes
        self.keys = tuple(key.encode() for key in api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        path = str(scope.get("path", ""))
        route = _route_label(path)

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.engine.metrics.observe_request(route, status, time.perf_counter() - started)
            await send(message)

        headers = dict(scope.get("headers", []))
        refusal = self._refusal(scope, path, headers)
        if refusal is None:
            body, refusal = await self._read_body(headers, receive)
        if refusal is not None:
            self.engine.metrics.observe_error(route, refusal.kind)
            await _send_json(counted_send, refusal.status, refusal.body())
            return
        await self.app(scope, _replay(body, receive), counted_send)

    def _refusal(self, scope: Scope, path: str, headers: dict[bytes, bytes]) -> APIError | None:
        if not self.keys or _is_open(scope, path):
            return None
        given = headers.get(b"authorization", b"")
        token = given[7:].strip() if given[:7].lower() == b"bearer " else b""
        if token and any(hmac.compare_digest(token, key) for key in self.keys):
            return None
        message = (
            "missing API key: send Authorization: Bearer KEY"
            if not token
            else "incorrect API key provided"
        )
        return APIError(401, message, None, "authentication_error", "invalid_api_key")

    async def _read_body(
        self, headers: dict[bytes, bytes], receive: Receive
    ) -> tuple[bytes, APIError | None]:
        """The whole body (at most the limit), or a 413."""
        too_large = APIError(
            413,
            f"the request body is over the limit of {self.limit} bytes",
            "body",
            code="request_too_large",
        )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return b"", too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return b"", too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None


OPEN_PATHS = ("/", "/health", "/metrics", "/static/app.js", "/static/style.css")
"""What needs no API key: the page and its files, health and metrics. Everything else does."""


def _is_open(scope: Scope, path: str) -> bool:
    """Whether ``path`` (less the app's ``root_path``, as the router sees it) is open."""
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path in OPEN_PATHS


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then passes on the client's
    later messages (its disconnect, which ends a stream)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _route_label(path: str) -> str:
    """A bounded metrics label for a path (unknown paths share one label)."""
    return path if path in ROUTES else _route_of(path)


def _route_of(path: str) -> str:
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    if path.startswith("/v1/search/items/"):
        return "/v1/search/items"
    if path.startswith("/static/"):
        return "/static"
    return "other"


# -- errors ---------------------------------------------------------------------------------
def _add_error_handlers(app: FastAPI, engine: Engine) -> None:
    def refuse(request: Request, error: APIError) -> JSONResponse:
        engine.metrics.observe_error(_route_label(request.url.path), error.kind)
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return refuse(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = {
            404: f"no route {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        text = message.get(error.status_code, str(error.detail))
        return refuse(request, APIError(error.status_code, text, None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query"))
        return refuse(request, bad_field(where or "request", str(first.get("msg", "is invalid"))))

    @app.exception_handler(ValueError)
    async def value_error(request: Request, error: ValueError) -> JSONResponse:
        return refuse(request, APIError(400, str(error), None))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        LOG.exception("unhandled error on %s", request.url.path)
        engine.metrics.observe_error(_route_label(request.url.path), "server_error")
        return JSONResponse(
            error_body("the server failed on this request", "server_error"), status_code=500
        )


# -- routes ---------------------------------------------------------------------------------
async def _json_body(request: Request) -> dict[str, Any]:
    return payload.parse_json_object(await request.body())


def _model_id(body: dict[str, Any]) -> str:
    """The request's ``model`` field: required, a string."""
    name = payload.require(body, "model", "model")
    if not isinstance(name, str):
        raise bad_field("model", f"must be a string, got {payload.describe(name)}")
    return name


def _check_model(body: dict[str, Any], engine: Engine) -> None:
    """404 unless the request names the checkpoint (the model of every route but chat)."""
    name = _model_id(body)
    if name != engine.name:
        raise APIError(
            404,
            f"model: {name!r} is not served here; this server serves {engine.name!r}",
            "model",
            code="model_not_found",
        )


def model_card(engine: Engine, gallery: Gallery | None) -> dict[str, Any]:
    """The ``model`` object of ``/v1/models`` with trimodal's details under ``trimodal``."""
    return {
        "id": engine.name,
        "object": "model",
        "created": 0,
        "owned_by": "trimodal",
        "trimodal": {
            "modalities": list(engine.modalities),
            "answers_from": engine.answers_from,
            "answers_from_note": (
                "replies are generated by the checkpoint's decoder"
                if engine.answers_from == "decoder"
                else "this checkpoint has no decoder: a chat reply is its answer head's answer to "
                "a question about the conversation's latest image (n choices = the n most "
                "probable answers)"
            ),
            "embedding_dimension": int(engine.model.network.config.model.embed_dim),
            "transcription_models": list(engine.transcription_models),
            "search": None if gallery is None else gallery.info["modalities"],
        },
    }


def whisper_card(model_id: str) -> dict[str, Any]:
    """The card of a Whisper model served for transcription."""
    return {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": "openai (Whisper, via faster-whisper)",
    }


def llm_card(llm: ChatBackend) -> dict[str, Any]:
    """The card of a pretrained LLM served beside the checkpoint."""
    return {
        "id": llm.name,
        "object": "model",
        "created": 0,
        "owned_by": "HuggingFaceTB (SmolLM2-135M-Instruct, Apache-2.0)",
        "trimodal": {
            "modalities": ["text", *llm.modalities],
            "answers_from": "decoder",
            "answers_from_note": llm.note,
        },
    }


def _add_routes(app: FastAPI, engine: Engine, gallery: Gallery | None) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": engine.name, "modalities": list(engine.modalities)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(engine.metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        cards = [model_card(engine, gallery)]
        cards += [whisper_card(n) for n in engine.transcription_models if n != engine.name]
        if engine.llm is not None:
            cards.append(llm_card(engine.llm))
        if engine.home is not None:
            cards.append(home.home_card())
        return {"object": "list", "data": cards}

    @app.get("/v1/models/{model_id}")
    async def one_model(model_id: str) -> dict[str, Any]:
        if engine.llm is not None and model_id == engine.llm.name:
            return llm_card(engine.llm)
        if engine.home is not None and model_id == home.HOME_MODEL_ID:
            return home.home_card()
        if model_id in engine.transcription_models and model_id != engine.name:
            return whisper_card(model_id)
        if model_id != engine.name:
            raise APIError(
                404, f"model {model_id!r} is not served here", "model", code="model_not_found"
            )
        return model_card(engine, gallery)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        body = await _json_body(request)
        name = _model_id(body)
        home_run = engine.home
        if home_run is not None and name == home.HOME_MODEL_ID:
            request_media = await _off_loop(lambda: home.parse_home_request(body, engine))
            outcome = await _off_loop(lambda: home.answer(home_run, *request_media))
            return JSONResponse(home.home_body(outcome))
        backend, media, fingerprint = engine.chat_model(name)
        # the served checkpoint's own paths take its transform; a pretrained LLM's backend
        # reads decoded images its own way
        own = backend is None or backend is engine.decoder
        prepare = engine.prepare_image if own else None
        parsed = await _off_loop(
            lambda: completions.parse_chat_request(body, engine, media, prepare)
        )
        if parsed.stream:
            events = await completions.stream(engine, parsed, backend, name, fingerprint)
            return StreamingResponse(events, media_type="text/event-stream")
        answer = await completions.reply(engine, parsed, backend)
        return JSONResponse(completions.completion_body(name, fingerprint, answer))

    @app.post("/v1/embeddings", response_model=None)
    async def embed(request: Request) -> JSONResponse:
        body = await _json_body(request)
        _check_model(body, engine)
        encoding = embeddings.encoding_format(body)
        embeddings.check_dimensions(body, int(engine.model.network.config.model.embed_dim))
        items = await _off_loop(lambda: embeddings.parse_inputs(body, engine))
        vectors = await engine.embed(items)
        return JSONResponse(embeddings.embeddings_body(engine, items, vectors, encoding))

    @app.post("/v1/audio/transcriptions", response_model=None)
    async def transcribe(request: Request) -> dict[str, Any] | PlainTextResponse:
        data, model_id, response_format = await transcriptions.read_form(request)
        text, duration = await transcriptions.transcribe(engine, data, model_id)
        if response_format == "text":
            return PlainTextResponse(text + "\n")
        return transcriptions.transcription_body(text, duration, response_format)

    @app.post("/v1/search")
    async def search(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        _check_model(body, engine)
        if gallery is None:
            raise APIError(
                404, "this server has no search gallery (start it with --index DIR)", None
            )
        k = payload.integer(body, "top_k", "top_k", default=10, low=1, high=MAX_TOP_K) or 10
        wanted = _search_modalities(body, gallery)
        query = await _off_loop(lambda: embeddings.parse_inputs(body, engine, "query"))
        if len(query) != 1 or isinstance(body["query"], list):
            raise bad_field("query", "must be one string or one content part")
        vector = (await engine.embed(query))[0].to("cpu").numpy().astype(np.float32)
        hits = gallery.search(vector, k, wanted)
        return {
            "object": "list",
            "model": engine.name,
            "query_modality": query[0].modality,
            "data": [_hit_body(rank, hit) for rank, hit in enumerate(hits)],
        }

    @app.get("/v1/search/items/{modality}/{row}/content")
    async def item_content(modality: str, row: int) -> Response:
        if gallery is None:
            raise APIError(404, "this server has no search gallery", None)
        path = (
            gallery.file_of(modality, row) if modality != "text" else _image_of_text(gallery, row)
        )
        if path is None or not path.is_file():
            raise APIError(404, f"gallery item {modality}/{row} has no file", None)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=kind)

    page = resources.files("trimodal.serve") / "static"

    @app.get("/")
    async def index() -> Response:
        return Response((page / "index.html").read_bytes(), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in ("app.js", "style.css"):
            raise APIError(404, f"no file {name!r}", None)
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response((page / name).read_bytes(), media_type=f"{kind}; charset=utf-8")


def _search_modalities(body: dict[str, Any], gallery: Gallery) -> list[str] | None:
    value = body.get("modalities")
    if value is None:
        return None
    names = payload.array(value, "modalities", 8)
    for index, name in enumerate(names):
        if name not in gallery.modalities:
            raise bad_field(
                f"modalities[{index}]",
                f"the gallery holds {', '.join(gallery.modalities)}, got {name!r}",
            )
    return list(names)


def _image_of_text(gallery: Gallery, row: int) -> Path | None:
    items = gallery.items.get("text", [])
    if not 0 <= row < len(items) or "image_file" not in items[row]:
        return None
    return Path(items[row]["image_file"])


def _hit_body(rank: int, hit: Any) -> dict[str, Any]:
    item = {key: value for key, value in hit.item.items() if key not in ("file", "image_file")}
    has_content = "file" in hit.item or "image_file" in hit.item
    return {
        "object": "search.result",
        "rank": rank,
        "modality": hit.modality,
        "score": round(hit.score, 6),
        "item": item,
        "content_url": f"/v1/search/items/{hit.modality}/{hit.row}/content"
        if has_content
        else None,
    }


async def _off_loop(work: Callable[[], Any]) -> Any:
    """Decode a request's media off the event loop (images and audio take milliseconds)."""
    return await asyncio.to_thread(work)
