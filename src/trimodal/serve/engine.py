"""The model side of the server: batched questions and embeddings, transcription, generation.

Batched work (questions for the answer head, embeddings) runs in one model thread, so batches
never compete for the cores; each generation runs in a thread of its own, so a long streamed
reply does not hold up other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F
from PIL import Image

from trimodal.inference import Answers, Model, Question
from trimodal.modalities import StoredModality, get_modality
from trimodal.serve.backends import ChatBackend, CheckpointDecoder
from trimodal.serve.batcher import DynamicBatcher
from trimodal.serve.errors import APIError
from trimodal.serve.media import MediaLimits
from trimodal.serve.metrics import ServeMetrics

if TYPE_CHECKING:
    from trimodal.home.run import HomeRun

Value = TypeVar("Value")

EmbedValue = str | Image.Image | torch.Tensor
"""Text, a decoded image, or a waveform / a stored modality's decoded row."""


@dataclass(frozen=True)
class EmbedItem:
    """One input of ``/v1/embeddings`` in the model's terms."""

    modality: str
    value: EmbedValue


@dataclass(frozen=True)
class QuestionItem:
    """One question for the answer head and how many answers the caller wants."""

    question: Question
    top: int = 1


class Engine:
    """A loaded model served to many concurrent requests.

    Args:
        model: the checkpoint's :class:`~trimodal.inference.Model`.
        name: the model id clients send (``model`` field).
        limits: what one request's media may be.
        max_batch, wait_ms: dynamic batching (see :class:`DynamicBatcher`).
        whisper: also serve this Whisper model (``tiny.en`` or ``base``) for transcription.
        llm: also serve this pretrained LLM for chat (its own model id: ``smollm2``, or
            ``llava`` for a llava run).
        home: also serve this smart-home run as model id ``home`` (:mod:`trimodal.serve.home`).
    """

    def __init__(
        self,
        model: Model,
        name: str,
        limits: MediaLimits | None = None,
        max_batch: int = 32,
        wait_ms: float = 5.0,
        whisper: str | None = None,
        generation_threads: int = 4,
        llm: ChatBackend | None = None,
        home: HomeRun | None = None,
    ):
        self.model = model
        self.name = name
        self.limits = limits or MediaLimits(max_audio_seconds=model.max_audio_seconds)
        self.metrics = ServeMetrics()
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="trimodal-model")
        self._generation_threads = ThreadPoolExecutor(
            generation_threads, thread_name_prefix="trimodal-generate"
        )
        self.questions: DynamicBatcher[QuestionItem, Answers] = DynamicBatcher(
            self._answer_batch,
            self._model_thread,
            max_batch,
            wait_ms,
            partial(self.metrics.observe_batch, "questions"),
        )
        self.embeddings: DynamicBatcher[EmbedItem, torch.Tensor] = DynamicBatcher(
            self._embed_batch,
            self._model_thread,
            max_batch,
            wait_ms,
            partial(self.metrics.observe_batch, "embeddings"),
        )
        self.whisper_name = whisper
        self._whisper: Any = None
        self.llm = llm
        self.home = home
        """A smart-home run served as model id ``home`` (replies are tool calls)."""
        self.decoder = CheckpointDecoder(model, name) if model.network.decoder is not None else None

    # -- what the model offers -----------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the checkpoint has encoders for (``text``, ``image``, ``audio``, ...)."""
        return tuple(self.model.network.encoders)

    @property
    def answers_from(self) -> str:
        """``decoder`` when the checkpoint generates text, else ``answer_head``."""
        return "decoder" if self.model.network.decoder is not None else "answer_head"

    @property
    def sample_rate(self) -> int:
        """The sample rate audio is decoded to."""
        return self.model.log_mel.sample_rate

    @property
    def transcription_models(self) -> tuple[str, ...]:
        """Model ids ``/v1/audio/transcriptions`` accepts."""
        own = (self.name,) if self.can_transcribe else ()
        return own + ((f"whisper-{self.whisper_name}",) if self.whisper_name else ())

    @property
    def can_transcribe(self) -> bool:
        """Whether the checkpoint itself writes down speech (a transcriber or a decoder)."""
        network = self.model.network
        return "audio" in self.modalities and (
            network.transcriber is not None or network.decoder is not None
        )

    def chat_model(self, model_id: str) -> tuple[ChatBackend | None, tuple[str, ...], str]:
        """For a chat's ``model`` field: the backend that generates (None: the answer head),
        the media it reads, and the ``system_fingerprint``; 404 for an unknown id."""
        if self.llm is not None and model_id == self.llm.name:
            return self.llm, self.llm.modalities, f"trimodal-{self.llm.name}"
        if model_id != self.name:
            served = ", ".join(
                [
                    self.name,
                    *([self.llm.name] if self.llm else []),
                    *(["home"] if self.home else []),
                ]
            )
            raise APIError(
                404,
                f"model: {model_id!r} is not served here; this server serves {served}",
                "model",
                code="model_not_found",
            )
        media = tuple(m for m in ("image", "audio") if m in self.modalities)
        backend = self.decoder
        return backend, backend.modalities if backend else media, f"trimodal-{self.answers_from}"

    def stored_modality(self, name: str) -> StoredModality | None:
        """The checkpoint's modality ``name`` if files of its own hold it (``video``)."""
        if name not in self.modalities:
            return None
        modality = get_modality(name)
        return modality if isinstance(modality, StoredModality) else None

    def prepare_image(self, image: Image.Image) -> torch.Tensor:
        """An image through the model's transform ``[3, S, S]`` (in the request's own thread,
        so the model thread only stacks)."""
        return self.model.image_transform(image)

    # -- batched work ------------------------------------------------------------------------
    async def ask(self, question: Question, top: int = 1) -> Answers:
        """The answer head's ``top`` answers to one question (dynamically batched)."""
        return await self.questions.submit(QuestionItem(question, top))

    async def embed(self, items: Sequence[EmbedItem]) -> torch.Tensor:
        """L2-normalized embeddings ``[N, E]`` of one request's items (they join a dynamic
        batch together)."""
        return torch.stack(await self.embeddings.submit_many(items))

    def _answer_batch(self, items: Sequence[QuestionItem]) -> list[Answers]:
        top = max(item.top for item in items)
        answers = self.model.ask_batch([item.question for item in items], top=top)
        return [found[: item.top] for found, item in zip(answers, items, strict=True)]

    def _embed_batch(self, items: Sequence[EmbedItem]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(items)
        for modality in dict.fromkeys(item.modality for item in items):
            rows = [i for i, item in enumerate(items) if item.modality == modality]
            values = [items[i].value for i in rows]
            for row, vector in zip(rows, self.embed_now(modality, values), strict=True):
                out[row] = vector
        return [vector for vector in out if vector is not None]

    @torch.no_grad()
    def embed_now(self, modality: str, values: Sequence[EmbedValue]) -> torch.Tensor:
        """Embed values of one modality in this thread: ``[N, E]``, L2-normalized."""
        model = self.model
        if modality == "text":
            return model.embed_texts([v for v in values if isinstance(v, str)])
        if modality == "image":
            return model.embed_images([v for v in values if not isinstance(v, str)])
        if modality == "audio":
            return model.embed_audio([v for v in values if isinstance(v, torch.Tensor)])
        stored = self.stored_modality(modality)
        if stored is None:
            raise ValueError(f"this checkpoint has no {modality} encoder")
        rows = torch.stack([v for v in values if isinstance(v, torch.Tensor)])
        with model.precision.autocast():
            encoded = model.network.encode(modality, *stored.inputs(rows, model.network.config))
        return F.normalize(encoded.pooled.float(), dim=-1).cpu()

    def decode_stored(self, modality: str, path: Path) -> torch.Tensor:
        """A stored modality's file (the server's own temporary copy) -> its decoded row."""
        stored = self.stored_modality(modality)
        if stored is None:
            raise ValueError(f"this checkpoint has no {modality} encoder")
        problem = stored.check_file(path)
        if problem is not None:
            raise ValueError(problem)
        return stored.decode(path, self.model.network.config)

    # -- unbatched work ------------------------------------------------------------------------
    async def in_model_thread(self, work: Callable[[], Value]) -> Value:
        """Run ``work`` in the model thread (between batches)."""
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, work)

    async def in_generation_thread(self, work: Callable[[], Value]) -> Value:
        """Run ``work`` in a generation thread (beside batches and other generations)."""
        return await asyncio.get_running_loop().run_in_executor(self._generation_threads, work)

    def whisper(self) -> Any:
        """The Whisper tower (loaded on first use; the towers extra)."""
        if self._whisper is None:
            from trimodal.towers.whisper import WhisperTower

            assert self.whisper_name is not None
            self._whisper = WhisperTower.load(self.whisper_name)
        return self._whisper

    @torch.no_grad()
    def transcribe_now(self, model_id: str, waveform: torch.Tensor) -> str:
        """What a clip says, by the checkpoint's transcriber (or decoder) or by Whisper."""
        if self.whisper_name and model_id == f"whisper-{self.whisper_name}":
            return str(self.whisper().transcribe(waveform.numpy()))
        if self.model.network.transcriber is not None:
            return self.model.transcribe_question(waveform)
        return self.model.transcribe(waveform)

    async def close(self) -> None:
        """Stop the batchers and the threads."""
        await self.questions.close()
        await self.embeddings.close()
        self._model_thread.shutdown(wait=False, cancel_futures=True)
        self._generation_threads.shutdown(wait=False, cancel_futures=True)
