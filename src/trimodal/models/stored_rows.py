"""Encoding rows of a decoded manifest (:class:`~trimodal.data.tensors.SceneTensors`).

Training steps and the evaluation harness both encode "these rows' images / captions / caption
audio" from the same store; this is the one place that knows where each modality lives in it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from trimodal.data.tensors import SceneTensors, to_float_images
from trimodal.modalities import stored_modalities
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput, TokenSequence


def row_encoders(
    model: TriModalModel, tensors: SceneTensors
) -> dict[str, Callable[[torch.Tensor], EncoderOutput]]:
    """Per modality, ``rows [B] -> EncoderOutput`` of the rows' image, caption, caption audio
    and each stored modality the model has an encoder for (``video``)."""
    encoders: dict[str, Callable[[torch.Tensor], EncoderOutput]] = {
        "image": lambda r: model.encode("image", to_float_images(tensors.images[r])),
        "text": lambda r: model.encode_padded_text(tensors.caption_ids[r], tensors.caption_mask[r]),
        "audio": lambda r: model.encode("audio", *tensors.caption_audio.batch(r)),
    }
    for name in tensors.media:
        if name in model.encoders:
            encoders[name] = partial(_stored, model, tensors, name)
    return encoders


def _stored(
    model: TriModalModel, tensors: SceneTensors, modality: str, rows: torch.Tensor
) -> EncoderOutput:
    return model.encode(modality, *tensors.batch(modality, rows, model.config))


def context_modalities(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor
) -> list[str]:
    """The stored modalities that questions about ``rows`` are also asked of: those whose
    ``question_role`` is ``context``, that the model encodes, and that every one of ``rows``
    carries (a batch mixing rows with and without one is answered from the image alone)."""
    return [
        m.name
        for m in stored_modalities(model.config)
        if m.question_role == "context"
        and m.name in tensors.media
        and bool(tensors.has(m.name)[rows].all())
    ]


def question_context(
    model: TriModalModel,
    image: EncoderOutput,
    stored: dict[str, EncoderOutput],
) -> dict[str, TokenSequence]:
    """What fusion reads beside a question: the image as fusion sees it
    (:meth:`TriModalModel.image_context`), then each stored context modality's tokens."""
    return {"image": model.image_context(image)} | {
        name: output.sequence() for name, output in stored.items()
    }
