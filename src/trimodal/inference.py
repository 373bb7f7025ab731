"""The user-facing Python API over a trained checkpoint.

>>> from trimodal import Model
>>> model = Model.from_pretrained("./runs/default")        # a local run folder  # doctest: +SKIP
>>> model.ask("scene.png", text="what color is the star?")  # doctest: +SKIP
[('red', 0.97)]
>>> model.ask(video="clip.mp4", text="which way does the star move?")  # doctest: +SKIP
[('left', 0.93)]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trimodal.data.dataset import pad_sequences, pad_spectrograms
from trimodal.data.tokenizer import TextTokenizer
from trimodal.data.transforms import ImageTransform, LogMel, load_audio, max_audio_seconds
from trimodal.generation.chat import AudioSource, ImageSource, Turn, render_ids, text_turns
from trimodal.generation.conditioning import generate_replies
from trimodal.modalities import get_modality
from trimodal.modalities.base import StoredModality
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.decoder import DecoderLM
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.modules.layers import TokenSequence

PathLike = str | os.PathLike[str]
Answers = list[tuple[str, float]]
"""Answers with their probabilities, best first."""


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


class Model:
    """A trained tri-modal model with its tokenizer and preprocessing."""

    def __init__(self, network: TriModalModel, tokenizer: TextTokenizer):
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.image_transform = ImageTransform(size=network.config.data.image_size)
        self.log_mel = LogMel(n_mels=network.config.data.n_mels)

    @classmethod
    def from_pretrained(cls, directory: PathLike) -> Model:
        """Load a run folder (its latest checkpoint) or a checkpoint folder."""
        network = TriModalModel.from_pretrained(directory)
        assert network.tokenizer is not None
        return cls(network, network.tokenizer)

    # -- encoders ---------------------------------------------------------------------
    def _images(self, sources: Sequence[ImageSource]) -> EncoderOutput:
        pixels = [s if isinstance(s, torch.Tensor) else self.image_transform(s) for s in sources]
        return self.network.encode("image", torch.stack(pixels))

    def _texts(self, texts: Sequence[str], questions: bool = False) -> EncoderOutput:
        encoded = [self.tokenizer.encode(t) or [self.tokenizer.unk_id] for t in texts]
        ids, mask = pad_sequences(
            [torch.tensor(e, dtype=torch.long) for e in encoded], self.tokenizer.pad_id
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

    @torch.no_grad()
    def embed_media(self, modality: str, paths: Sequence[PathLike]) -> torch.Tensor:
        """L2-normalized embeddings ``[N, E]`` of files of a stored modality (``video``)."""
        return F.normalize(self._stored(modality, paths).pooled, dim=-1)

    @torch.no_grad()
    def embed_images(self, sources: Sequence[ImageSource]) -> torch.Tensor:
        """L2-normalized image embeddings ``[N, E]``."""
        return F.normalize(self._images(sources).pooled, dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalized text embeddings ``[N, E]``."""
        return F.normalize(self._texts(texts).pooled, dim=-1)

    @torch.no_grad()
    def embed_audio(self, sources: Sequence[AudioSource]) -> torch.Tensor:
        """L2-normalized audio embeddings ``[N, E]`` (files of any sample rate or channel
        count, or waveforms at the model's rate)."""
        return F.normalize(self._audio(sources).pooled, dim=-1)

    # -- tasks ------------------------------------------------------------------------
    @torch.no_grad()
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

    @torch.no_grad()
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
        probabilities = self.network.answer_logits(inputs).softmax(-1)  # [B, n_answers]
        values, indices = probabilities.topk(min(top, probabilities.shape[-1]), dim=-1)
        answers = self.network.vocabulary.answers
        return [
            [(answers[i], float(v)) for v, i in zip(row_values, row_indices, strict=True)]
            for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    @torch.no_grad()
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
    @torch.no_grad()
    def chat(self, turns: Sequence[Turn], max_new_tokens: int = 40, **sampling: Any) -> str:
        """The assistant's next reply to a conversation (the last turn is the user's).

        Every image and audio of the conversation, in order, becomes the decoder's prefix.
        ``sampling``: ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``generator``.
        """
        (reply,) = self.reply_ids(self.chat_prompt(turns), 1, max_new_tokens, **sampling)
        return self.tokenizer.decode(reply).strip()

    @torch.no_grad()
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

    @torch.no_grad()
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
