"""What every task loss reads: a step's rows and their encoder outputs, computed once per step.

:class:`StepInputs` encodes lazily (a task that does not read audio never encodes it) and
shares the outputs between the step's tasks; :class:`FrozenOutputs` holds an encoder's outputs
computed once at a stage's start, for stages that keep that encoder fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from trimodal.data.image_effects import PixelAugment
from trimodal.data.mel_effects import AudioAugment
from trimodal.data.tensors import SceneTensors, to_float_images
from trimodal.data.transforms import ImageTransform
from trimodal.hardware import on_host
from trimodal.models.stored_rows import context_modalities, question_context, row_encoders
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput, TokenSequence
from trimodal.world.caption_pool import CaptionPool


@dataclass
class StepInputs:
    """Rows of a step and lazily computed encoder outputs shared between tasks."""

    model: TriModalModel
    tensors: SceneTensors
    rows: torch.Tensor
    generator: torch.Generator
    augment: ImageTransform | None = None
    cache: dict[str, EncoderOutput] = field(default_factory=dict)
    frozen: dict[str, FrozenOutputs] = field(default_factory=dict)
    """Fixed encoder outputs (``image``, ``audio``, ``spoken``) used instead of encoding."""
    captions: CaptionPool | None = None
    """Stage 3's caption variants, drawn instead of the stored captions (caption, dialogue)."""
    corrupt: PixelAugment | None = None
    """Training-time pixel noise and blur on the step's images."""
    hear: AudioAugment | None = None
    """Training-time noise, channels, rate, pitch and masks on the step's spoken clips."""

    def image(self) -> EncoderOutput:
        """Image encoder output for ``rows`` (computed once per step)."""
        if "image" not in self.cache and "image" in self.frozen:
            self.cache["image"] = self.frozen["image"].select(self.rows)
        if "image" not in self.cache:
            raw = self.tensors.images[self.rows]
            if self.augment is None and self.corrupt is None:
                images = to_float_images(raw)
            else:
                images = self._augmented_batch(raw)
            self.cache["image"] = self.model.encode("image", images)
        return self.cache["image"]

    def _augmented_batch(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, S, S]`` -> normalized float images after the per-image augmentation
        (shift, jitter) and the batch's pixel corruption, whichever are on. Augmentation runs
        on the CPU with the step's CPU generator on every device (the same draws everywhere);
        the encoder moves the result to the model's device."""
        transform = self.augment or ImageTransform(size=raw.shape[-1])
        with on_host():
            pixels = raw.cpu().float() / 255.0
            if self.augment is not None:
                pixels = torch.stack([self.augment._augment(x, self.generator) for x in pixels])
            if self.corrupt is not None:
                pixels = self.corrupt(pixels, self.generator)
            return transform.normalize(pixels)

    def text(self) -> EncoderOutput:
        """Caption encoder output for ``rows``."""
        if "text" not in self.cache:
            ids, mask = self.tensors.caption_ids[self.rows], self.tensors.caption_mask[self.rows]
            self.cache["text"] = self.model.encode_padded_text(ids, mask)
        return self.cache["text"]

    def audio(self) -> EncoderOutput:
        """Spoken-caption encoder output for ``rows``."""
        if "audio" not in self.cache and "audio" in self.frozen:
            self.cache["audio"] = self.frozen["audio"].select(self.rows)
        if "audio" not in self.cache:
            clips = self._heard(*self.tensors.caption_audio.batch(self.rows))
            self.cache["audio"] = self.model.encode("audio", *clips)
        return self.cache["audio"]

    def encoded(self, modality: str) -> EncoderOutput:
        """``modality``'s encoder output for ``rows``: ``image``, ``text`` (captions), ``audio``
        (spoken captions) or a stored modality (``video``) from its own store."""
        built_in = {"image": self.image, "text": self.text, "audio": self.audio}
        if modality in built_in:
            return built_in[modality]()
        if modality not in self.cache and modality in self.frozen:
            self.cache[modality] = self.frozen[modality].select(self.rows)
        if modality not in self.cache:
            inputs = self.tensors.batch(modality, self.rows, self.model.config)
            self.cache[modality] = self.model.encode(modality, *inputs)
        return self.cache[modality]

    def context(self, scene: torch.Tensor) -> dict[str, TokenSequence]:
        """What questions about the step's rows at batch positions ``scene [M]`` are asked of:
        the image as fusion sees it, then every stored context modality (``video``) the model
        encodes and those rows carry (see :func:`context_modalities`)."""
        names = context_modalities(self.model, self.tensors, self.rows[scene])
        stored = {name: self.encoded(name) for name in names}
        return {
            name: tokens.select(scene)
            for name, tokens in question_context(self.model, self.image(), stored).items()
        }

    def spoken(self, rows: torch.Tensor) -> EncoderOutput:
        """Spoken-question encoder output for ``rows`` (a subset that has spoken questions)."""
        if "spoken" in self.frozen:
            return self.frozen["spoken"].select(rows)
        return self.model.encode("audio", *self._heard(*self.tensors.spoken_audio.batch(rows)))

    def _heard(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``[B, M, F]`` and mask ``[B, F]`` after the audio augmentation, if any (on
        the CPU, as the image augmentation)."""
        if self.hear is None:
            return features, mask
        with on_host():
            return self.hear(features.cpu(), mask.cpu(), self.generator)


@dataclass
class FrozenOutputs:
    """One encoder's outputs computed once, for a stage that keeps that encoder fixed.

    Stored ragged, so memory follows the real tokens, not the longest row times the row count
    (one long clip among many short ones would otherwise pad them all): the encoded rows' tokens
    up to each row's last real one, concatenated, ``tokens [sum_r T_r, D]`` with their ``mask
    [sum_r T_r]``; row ``i`` holds ``offsets[i]:offsets[i + 1]``. ``pooled [R, E]`` is the
    pooled embedding of each encoded row; ``position[row]`` is where a tensors row sits among
    the encoded rows (-1 for rows not encoded).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    offsets: torch.Tensor
    pooled: torch.Tensor
    position: torch.Tensor

    def select(self, rows: torch.Tensor) -> EncoderOutput:
        """The outputs of ``rows [B]``, padded to their longest row: tokens ``[B, T, D]`` (zero
        after a row's end), mask ``[B, T]``, pooled ``[B, E]``. Every row must be encoded."""
        at = self.position[rows.to(self.position.device)]
        if bool((at < 0).any()):
            missing = rows[at < 0].tolist()[:5]
            raise ValueError(f"rows {missing} were not encoded by encode_frozen")
        starts, lengths = self.offsets[at], self.offsets[at + 1] - self.offsets[at]
        longest = int(lengths.max()) if len(rows) else 0
        steps = torch.arange(longest, device=at.device)
        inside = steps < lengths[:, None]  # (B, T)
        source = (starts[:, None] + steps)[inside]
        tokens = self.tokens.new_zeros(len(rows), longest, self.tokens.shape[-1])
        tokens[inside] = self.tokens[source]
        mask = torch.zeros(len(rows), longest, dtype=torch.bool, device=at.device)
        mask[inside] = self.mask[source]
        return EncoderOutput(tokens, mask, self.pooled[at])


@contextmanager
def evaluating(model: TriModalModel) -> Iterator[None]:
    """Eval mode without gradients inside the block; the model's mode is restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _used_length(mask: torch.Tensor) -> torch.Tensor:
    """Per row of ``mask [B, T]``, one past its last True position (0 for an empty row)."""
    steps = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return (
        (mask * steps).amax(dim=1) if mask.shape[1] else mask.new_zeros(len(mask), dtype=torch.long)
    )


def encode_frozen(
    model: TriModalModel,
    encode: Callable[[torch.Tensor], EncoderOutput],
    rows: torch.Tensor,
    total_rows: int,
    chunk: int = 256,
) -> FrozenOutputs:
    """``encode(rows chunk)`` over ``rows`` (at least one) in eval mode without gradients,
    kept ragged (see :class:`FrozenOutputs`); the model goes back to the mode it was in."""
    if not len(rows):
        raise ValueError("encode_frozen needs at least one row to encode")
    tokens, masks, lengths, pooled = [], [], [], []
    with evaluating(model):
        for start in range(0, len(rows), chunk):
            part = encode(rows[start : start + chunk])
            used = _used_length(part.mask)
            inside = torch.arange(part.mask.shape[1], device=used.device) < used[:, None]
            tokens.append(part.tokens[inside])
            masks.append(part.mask[inside])
            lengths.append(used)
            pooled.append(part.pooled)
    offsets = F.pad(torch.cat(lengths).cumsum(0), (1, 0))
    device = offsets.device
    position = torch.full((total_rows,), -1, dtype=torch.long, device=device)
    position[rows.to(device)] = torch.arange(len(rows), device=device)
    return FrozenOutputs(torch.cat(tokens), torch.cat(masks), offsets, torch.cat(pooled), position)


def freeze_perception(
    model: TriModalModel,
    tensors: SceneTensors,
    rows: torch.Tensor,
    towers: set[str],
    hear: AudioAugment | None = None,
    seed: int = 0,
) -> dict[str, FrozenOutputs]:
    """Fixed outputs of ``rows`` for ``towers``: ``image`` (the images), ``audio`` (spoken
    captions; a row without one gets an empty mask, as in a step's batch) and ``spoken``
    (spoken questions, of the rows that have one; none without any, as no step asks for
    them then). With ``hear`` (the recipe's audio augmentation) the clips are encoded as one
    augmented view each, drawn from a generator seeded with ``seed``, so that what a frozen
    stage trains on (the transcriber, the typed path through it) meets the channels too."""
    total = len(tensors.images)
    encoders = row_encoders(model, tensors)
    generator = torch.Generator().manual_seed(seed)

    def heard(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hear is None:
            return features, mask
        with on_host():  # augmentation runs on the CPU (see StepInputs._heard)
            return hear(features.cpu(), mask.cpu(), generator)

    if hear is not None:
        encoders["audio"] = lambda r: model.encode("audio", *heard(*tensors.caption_audio.batch(r)))
    frozen: dict[str, FrozenOutputs] = {}
    for tower in ("image", "audio", *tensors.media):
        if tower in towers and tower in encoders:
            frozen[tower] = encode_frozen(model, encoders[tower], rows, total)
    with_spoken = rows[tensors.spoken_index[rows] >= 0]
    if "spoken" in towers and len(with_spoken):
        frozen["spoken"] = encode_frozen(
            model,
            lambda r: model.encode("audio", *heard(*tensors.spoken_audio.batch(r))),
            with_spoken,
            total,
        )
    return frozen


def zero_loss(step: StepInputs) -> torch.Tensor:
    """A zero loss attached to the graph, for a step with no rows for a task."""
    return step.model.cls_token.sum() * 0.0


def present_rows(step: StepInputs, modality: str) -> torch.Tensor:
    """Batch positions ``[B_m]`` of the step's rows that have ``modality``: a sample may lack
    any of them, and a missing one's encoding (of a blank image, an empty clip or caption)
    would otherwise enter the contrastive loss as if it were a real example."""
    return torch.arange(len(step.rows), device=step.rows.device)[
        step.tensors.has(modality)[step.rows]
    ]
