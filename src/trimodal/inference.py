"""The user-facing Python API over a trained checkpoint.

>>> from trimodal import Model
>>> model = Model.from_pretrained("./runs/default")        # a local run folder  # doctest: +SKIP
>>> model.ask("scene.png", text="what color is the star?")  # doctest: +SKIP
[('red', 0.97)]
>>> model.ask(video="clip.mp4", text="which way does the star move?")  # doctest: +SKIP
[('left', 0.93)]
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch
import torch.nn.functional as F

from trimodal.data.dataset import pad_sequences, pad_spectrograms
from trimodal.data.manifest import MAX_TEXT_CHARS
from trimodal.data.tokenizer import TextTokenizer
from trimodal.data.transforms import ImageTransform, LogMel, load_audio, max_audio_seconds
from trimodal.generation.chat import AudioSource, ImageSource, Turn, render_ids, text_turns
from trimodal.generation.conditioning import generate_replies
from trimodal.hardware import Precision, resolve_device, resolve_precision
from trimodal.modalities import get_modality
from trimodal.modalities.base import StoredModality
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.decoder import DecoderLM
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import TokenSequence

Params = ParamSpec("Params")
Result = TypeVar("Result")
PathLike = str | os.PathLike[str]
Answers = list[tuple[str, float]]
"""Answers with their probabilities, best first."""


def checked_texts(texts: Sequence[str]) -> Sequence[str]:
    """``texts`` unchanged, or a ValueError naming the first empty one or one longer than
    ``MAX_TEXT_CHARS`` (a caption or a question, not a document): nothing is read silently
    as ``<unk>`` or cut without a word."""
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise ValueError(f"text {number} is empty: there is nothing to read")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(
                f"text {number} has {len(text)} characters; at most {MAX_TEXT_CHARS} are read "
                "(a caption or a question, not a document)"
            )
    return texts


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation ready for the decoder: the projected media prefix ``[1, P, Dd]`` (None
    without media) and the text ids ending in ``assistant:``."""

    prefix: TokenSequence | None
    ids: list[int]

    @property
    def length(self) -> int:
        """Positions the prompt takes (media tokens and text ids)."""
        return len(self.ids) + (0 if self.prefix is None else int(self.prefix.mask.sum()))


@dataclass(frozen=True)
class Question:
    """One question for :meth:`Model.ask_batch`: typed (``text``) or spoken (``audio``) about
    ``image``."""

    image: ImageSource
    text: str | None = None
    audio: AudioSource | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.audio is None):
            raise ValueError("a question needs exactly one of text= or audio=")


def _inference(method: Callable[Params, Result]) -> Callable[Params, Result]:
    """Run a :class:`Model` method without gradients, in the model's precision."""

    @functools.wraps(method)
    def wrapped(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        model = args[0]
        assert isinstance(model, Model)
        with torch.no_grad(), model.precision.autocast():
            return method(*args, **kwargs)

    return wrapped


class Model:
    """A trained tri-modal model with its tokenizer and preprocessing.

    It runs on the network's device in ``precision`` (:func:`~trimodal.hardware.resolve_precision`;
    fp32 unless asked). Inputs are prepared on the CPU and moved once; answers, transcripts and
    embeddings come back on the CPU, as float32.
    """

    def __init__(
        self, network: TriModalModel, tokenizer: TextTokenizer, precision: Precision | None = None
    ):
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.image_transform = ImageTransform(size=network.config.data.image_size)
        self.log_mel = LogMel(n_mels=network.config.data.n_mels)
        self.precision = precision or resolve_precision("fp32", network.device)

    @classmethod
    def from_pretrained(
        cls, directory: PathLike, device: str = "cpu", precision: str = "fp32"
    ) -> Model:
        """Load a run folder (its latest checkpoint) or a checkpoint folder onto ``device``
        (``auto``, ``cpu``, ``cuda[:N]``, ``mps``) to run in ``precision`` (``auto``,
        ``fp32``, ``bf16``, ``fp16``)."""
        chosen = resolve_device(device)
        network = TriModalModel.from_pretrained(directory, chosen)
        assert network.tokenizer is not None
        width = network.config.model.dim
        return cls(network, network.tokenizer, resolve_precision(precision, chosen, width=width))

    @property
    def device(self) -> torch.device:
        """Where the network runs."""
        return self.network.device

    # -- encoders ---------------------------------------------------------------------
    def _images(self, sources: Sequence[ImageSource]) -> EncoderOutput:
        pixels = [s if isinstance(s, torch.Tensor) else self.image_transform(s) for s in sources]
        return self.network.encode("image", torch.stack(pixels))

    def _texts(self, texts: Sequence[str], questions: bool = False) -> EncoderOutput:
        encoded = [
            self.tokenizer.encode(t) or [self.tokenizer.unk_id] for t in checked_texts(texts)
        ]
        longest = int(getattr(self.network.encoders["text"], "max_length", 0))
        cut = [i for i, ids in enumerate(encoded) if longest and len(ids) > longest]
        if cut:
            warnings.warn(
                f"{len(cut)} text(s) longer than the {longest} tokens the text tower reads "
                f"(text {cut[0] + 1}: {len(encoded[cut[0]])} tokens); only their first "
                f"{longest} tokens are read",
                stacklevel=3,
            )
        ids, mask = pad_sequences(
            [torch.tensor(e, dtype=torch.long, device="cpu") for e in encoded],
            self.tokenizer.pad_id,
        )
        if questions:
            return self.network.encode_question(ids, mask)
        return self.network.encode("text", ids, mask)

    def _audio(self, sources: Sequence[AudioSource]) -> EncoderOutput:
        features, mask = pad_spectrograms([self.log_mel(self._waveform(s)) for s in sources])
        return self.network.encode("audio", features, mask)

    def _waveform(self, source: AudioSource) -> torch.Tensor:
        """A file read (and checked) by :func:`load_audio`, or a waveform given as is."""
        if isinstance(source, torch.Tensor):
            return source
        return load_audio(source, self.log_mel.sample_rate, self.max_audio_seconds)

    @property
    def max_audio_seconds(self) -> float:
        """The longest clip the audio tower reads (seconds)."""
        return max_audio_seconds(self.log_mel)

    def _stored(self, modality: str, paths: Sequence[PathLike]) -> EncoderOutput:
        """Encode files of a stored modality (``video``) after checking each one."""
        stored = self._stored_modality(modality)
        rows = []
        for path in paths:
            problem = stored.check_file(Path(path))
            if problem is not None:
                raise ValueError(problem)
            rows.append(stored.decode(Path(path), self.network.config))
        config = self.network.config
        return self.network.encode(modality, *stored.inputs(torch.stack(rows), config))

    def _stored_modality(self, modality: str) -> StoredModality:
        stored = get_modality(modality)
        if not isinstance(stored, StoredModality):
            raise ValueError(f"{modality!r} is not a modality read from files of its own")
        if modality not in self.network.encoders:
            raise ValueError(
                f"this checkpoint has no {modality} encoder (its recipe did not enable it; "
                f"see configs/{modality}.yaml)"
            )
        return stored

    @_inference
    def embed_media(self, modality: str, paths: Sequence[PathLike]) -> torch.Tensor:
        """L2-normalized embeddings ``[N, E]`` of files of a stored modality (``video``)."""
        return _host(F.normalize(self._stored(modality, paths).pooled.float(), dim=-1))

    @_inference
    def embed_images(self, sources: Sequence[ImageSource]) -> torch.Tensor:
        """L2-normalized image embeddings ``[N, E]``."""
        return _host(F.normalize(self._images(sources).pooled.float(), dim=-1))

    @_inference
    def image_tokens(self, sources: Sequence[ImageSource]) -> torch.Tensor:
        """The image tower's tokens ``[N, T, D]`` (float32, on the model's device): what a
        decoder prefix is made of (every image has the same ``T``)."""
        return self._images(sources).tokens.float()

    @_inference
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalized text embeddings ``[N, E]``."""
        return _host(F.normalize(self._texts(texts).pooled.float(), dim=-1))

    @_inference
    def text_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The text encoder's token states ``[N, L, D]`` (float32) and mask ``[N, L]`` of
        ``texts``, on the CPU: how this model reads them, for a model conditioned on it."""
        encoded = self._texts(texts)
        return _host(encoded.tokens.float()), _host(encoded.mask)

    @_inference
    def embed_audio(self, sources: Sequence[AudioSource]) -> torch.Tensor:
        """L2-normalized audio embeddings ``[N, E]`` (files of any sample rate or channel
        count, or waveforms at the model's rate)."""
        return _host(F.normalize(self._audio(sources).pooled.float(), dim=-1))

    # -- tasks ------------------------------------------------------------------------
    @_inference
    def ask(
        self,
        image: PathLike | None = None,
        text: str | None = None,
        audio: PathLike | None = None,
        top: int = 1,
        **media: PathLike,
    ) -> Answers:
        """Answer a typed (``text``) or spoken (``audio``) question about ``image`` and/or the
        files of stored modalities given by name (``video="clip.mp4"``).

        Returns:
            the ``top`` answers with their probabilities, best first.
        """
        if (text is None) == (audio is None):
            raise ValueError("ask needs exactly one of text= or audio=")
        if image is None and not media:
            raise ValueError("ask needs something to ask about: image= or a file such as video=")
        inputs = {}
        if image is not None:
            inputs["image"] = self.network.image_context(self._images([image]))
        for modality, path in media.items():
            inputs[modality] = self._stored(modality, [path]).sequence()
        if text is not None:
            inputs["text"] = self._texts([text], questions=True).sequence()
        else:
            assert audio is not None
            inputs["audio"] = self._audio([audio]).sequence()
        return self._top_answers(inputs, top)[0]

    @_inference
    def ask_batch(self, questions: Sequence[Question], top: int = 1) -> list[Answers]:
        """Answer many questions about images in one forward per kind (typed, spoken).

        Each row is answered as :meth:`ask` would answer it alone (padding is masked).

        Returns:
            per question, the ``top`` answers with their probabilities, best first.
        """
        results: list[Answers] = [[] for _ in questions]
        typed = [i for i, q in enumerate(questions) if q.text is not None]
        spoken = [i for i, q in enumerate(questions) if q.text is None]
        for rows in (typed, spoken):
            if not rows:
                continue
            group = [questions[i] for i in rows]
            inputs = {"image": self.network.image_context(self._images([q.image for q in group]))}
            if rows is typed:
                texts = [q.text for q in group if q.text is not None]
                inputs["text"] = self._texts(texts, questions=True).sequence()
            else:
                clips = [q.audio for q in group if q.audio is not None]
                inputs["audio"] = self._audio(clips).sequence()
            for row, answers in zip(rows, self._top_answers(inputs, top), strict=True):
                results[row] = answers
        return results

    def _top_answers(self, inputs: dict[str, TokenSequence], top: int) -> list[Answers]:
        """The ``top`` answers of each row of a batch of fusion inputs, best first."""
        probabilities = self.network.answer_logits(inputs).float().softmax(-1)  # [B, n_answers]
        values, indices = probabilities.topk(min(top, probabilities.shape[-1]), dim=-1)
        answers = self.network.vocabulary.answers
        return [
            [(answers[i], float(v)) for v, i in zip(row_values, row_indices, strict=True)]
            for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    @_inference
    def transcribe_question(self, audio: AudioSource) -> str:
        """What the transcriber hears in a spoken question: the transcript :meth:`ask` answers
        when the model has a transcriber (``model.transcriber_depth``)."""
        if self.network.transcriber is None:
            raise ValueError(
                "this checkpoint has no transcriber; spoken questions are answered from their "
                "audio tokens (train with model.transcriber_depth > 0 and the transcribe task)"
            )
        ids, mask = self.network.transcript_ids(self._audio([audio]).sequence())
        return self.tokenizer.decode(ids[0][mask[0]].tolist()).strip()

    # -- generation -------------------------------------------------------------------
    @_inference
    def chat(self, turns: Sequence[Turn], max_new_tokens: int = 40, **sampling: Any) -> str:
        """The assistant's next reply to a conversation (the last turn is the user's).

        Every image and audio of the conversation, in order, becomes the decoder's prefix.
        ``sampling``: ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``generator``.
        """
        (reply,) = self.reply_ids(self.chat_prompt(turns), 1, max_new_tokens, **sampling)
        return self.tokenizer.decode(reply).strip()

    @_inference
    def chat_prompt(self, turns: Sequence[Turn]) -> ChatPrompt:
        """Encode a conversation's media into the decoder prefix and render its text ids."""
        self._require_decoder()
        parts = []
        for turn in turns:
            if turn.image is not None:
                parts.append(("image", self._images([turn.image]).sequence()))
            if turn.audio is not None:
                parts.append(("audio", self._audio([turn.audio]).sequence()))
        prefix = self.network.decoder_prefix(*parts) if parts else None
        ids, _ = render_ids(self.tokenizer, text_turns(turns), open_reply=True)
        return ChatPrompt(prefix, ids)

    def reply_room(self, prompt: ChatPrompt) -> int:
        """How many tokens the decoder can add after ``prompt`` (its positions minus the
        prompt's)."""
        return self._require_decoder().config.max_positions - prompt.length

    @_inference
    def reply_ids(
        self,
        prompt: ChatPrompt,
        n: int = 1,
        max_new_tokens: int = 40,
        on_token: Callable[[torch.Tensor], None] | None = None,
        **sampling: Any,
    ) -> list[list[int]]:
        """``n`` replies to one prompt, as token ids without ``<eos>``.

        ``on_token`` receives each step's tokens ``[n]`` (see
        :func:`~trimodal.generation.sampling.generate`); ``sampling`` as in :meth:`chat`.
        """
        decoder = self._require_decoder()
        prefix = prompt.prefix
        if prefix is not None:
            prefix = TokenSequence(prefix.tokens.expand(n, -1, -1), prefix.mask.expand(n, -1))
        return generate_replies(
            decoder,
            prefix,
            [prompt.ids] * n,
            self.tokenizer.pad_id,
            self.tokenizer.eos_id,
            max_new_tokens,
            on_token=on_token,
            **sampling,
        )

    def _require_decoder(self) -> DecoderLM:
        if self.network.decoder is None:
            raise ValueError(
                "this checkpoint has no decoder; train a recipe with model.decoder.depth > 0 "
                "and a generate stage (e.g. configs/generate.yaml)"
            )
        return self.network.decoder

    def caption(self, image: ImageSource, **options: Any) -> str:
        """Describe an image in words."""
        return self.chat([Turn("user", image=image)], **options)

    def transcribe(self, audio: AudioSource, **options: Any) -> str:
        """Write down what a recording says."""
        return self.chat([Turn("user", audio=audio)], **options)


def _host(values: torch.Tensor) -> torch.Tensor:
    """Results leave the device: ``values`` on the CPU (no copy when already there)."""
    return values.cpu()
