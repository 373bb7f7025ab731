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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trimodal.data.dataset import pad_sequences, pad_spectrograms
from trimodal.data.tokenizer import TextTokenizer
from trimodal.data.transforms import ImageTransform, LogMel, load_audio, max_audio_seconds
from trimodal.generation.chat import Turn, render_ids, text_turns
from trimodal.generation.conditioning import generate_replies
from trimodal.modalities import get_modality
from trimodal.modalities.base import StoredModality
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput

PathLike = str | os.PathLike[str]


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
    def _images(self, paths: Sequence[PathLike]) -> EncoderOutput:
        return self.network.encode("image", torch.stack([self.image_transform(p) for p in paths]))

    def _texts(self, texts: Sequence[str], questions: bool = False) -> EncoderOutput:
        encoded = [self.tokenizer.encode(t) or [self.tokenizer.unk_id] for t in texts]
        ids, mask = pad_sequences(
            [torch.tensor(e, dtype=torch.long) for e in encoded], self.tokenizer.pad_id
        )
        if questions:
            return self.network.encode_question(ids, mask)
        return self.network.encode("text", ids, mask)

    def _audio(self, paths: Sequence[PathLike]) -> EncoderOutput:
        longest = max_audio_seconds(self.log_mel)
        mels = [self.log_mel(load_audio(p, self.log_mel.sample_rate, longest)) for p in paths]
        features, mask = pad_spectrograms(mels)
        return self.network.encode("audio", features, mask)

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
    def embed_images(self, paths: Sequence[PathLike]) -> torch.Tensor:
        """L2-normalized image embeddings ``[N, E]``."""
        return F.normalize(self._images(paths).pooled, dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalized text embeddings ``[N, E]``."""
        return F.normalize(self._texts(texts).pooled, dim=-1)

    @torch.no_grad()
    def embed_audio(self, paths: Sequence[PathLike]) -> torch.Tensor:
        """L2-normalized audio embeddings ``[N, E]`` (any sample rate or channel count)."""
        return F.normalize(self._audio(paths).pooled, dim=-1)

    # -- tasks ------------------------------------------------------------------------
    @torch.no_grad()
    def ask(
        self,
        image: PathLike | None = None,
        text: str | None = None,
        audio: PathLike | None = None,
        top: int = 1,
        **media: PathLike,
    ) -> list[tuple[str, float]]:
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
        probabilities = self.network.answer_logits(inputs).softmax(-1)[0]
        values, indices = probabilities.topk(min(top, probabilities.numel()))
        answers = self.network.vocabulary.answers
        return [
            (answers[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    @torch.no_grad()
    def transcribe_question(self, audio: PathLike) -> str:
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
        decoder = self.network.decoder
        if decoder is None:
            raise ValueError(
                "this checkpoint has no decoder; train a recipe with model.decoder.depth > 0 "
                "and a generate stage (e.g. configs/generate.yaml)"
            )
        parts = []
        for turn in turns:
            if turn.image is not None:
                parts.append(("image", self._images([turn.image]).sequence()))
            if turn.audio is not None:
                parts.append(("audio", self._audio([turn.audio]).sequence()))
        prefix = self.network.decoder_prefix(*parts) if parts else None
        ids, _ = render_ids(self.tokenizer, text_turns(turns), open_reply=True)
        (reply,) = generate_replies(
            decoder,
            prefix,
            [ids],
            self.tokenizer.pad_id,
            self.tokenizer.eos_id,
            max_new_tokens,
            **sampling,
        )
        return self.tokenizer.decode(reply).strip()

    def caption(self, image: PathLike, **options: Any) -> str:
        """Describe an image in words."""
        return self.chat([Turn("user", image=image)], **options)

    def transcribe(self, audio: PathLike, **options: Any) -> str:
        """Write down what a recording says."""
        return self.chat([Turn("user", audio=audio)], **options)
