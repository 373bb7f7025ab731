"""Per-step task losses over rows of :class:`~trimodal.data.tensors.SceneTensors`.

Every task is a small function of (model, tensors, rows) returning a scalar loss, so the loop
can compute any subset of tasks in a step (the loss-driven scheduler picks the subset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from trimodal.data.tensors import SceneTensors, content_groups, to_float_images
from trimodal.data.transforms import ImageTransform
from trimodal.generation.chat import CAPTION_PROMPT, SPOKEN_PROMPT, TRANSCRIBE_PROMPT, render_ids
from trimodal.generation.conditioning import lm_loss, next_token_loss, text_states
from trimodal.losses.contrastive import MAX_SCALE, pairwise_contrastive
from trimodal.models.stored_rows import row_encoders
from trimodal.models.trimodal import TriModalModel
from trimodal.modules.encoders.base import EncoderOutput
from trimodal.world.caption_pool import CaptionPool
from trimodal.world.question_pool import IGNORE, QuestionPool

TASKS = ("contrastive", "vqa_typed", "vqa_spoken", "attributes", "objects")
REASON_TASKS = ("vqa_typed", "vqa_spoken", "contrastive", "transcribe")
"""Tasks of stage 2b, which keeps the image and audio towers fixed."""
IMAGE_TASKS = ("attributes", "objects")
"""Tasks that need only images (and scene graphs): they may join stage 1 too."""


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

    def image(self) -> EncoderOutput:
        """Image encoder output for ``rows`` (computed once per step)."""
        if "image" not in self.cache and "image" in self.frozen:
            self.cache["image"] = self.frozen["image"].select(self.rows)
        if "image" not in self.cache:
            raw = self.tensors.images[self.rows]
            if self.augment is not None:
                images = torch.stack([self.augment.normalize(self._augmented(x)) for x in raw])
            else:
                images = to_float_images(raw)
            self.cache["image"] = self.model.encode("image", images)
        return self.cache["image"]

    def _augmented(self, image: torch.Tensor) -> torch.Tensor:
        assert self.augment is not None
        return self.augment._augment(image.float() / 255.0, self.generator)

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
            features, mask = self.tensors.caption_audio.batch(self.rows)
            self.cache["audio"] = self.model.encode("audio", features, mask)
        return self.cache["audio"]

    def spoken(self, rows: torch.Tensor) -> EncoderOutput:
        """Spoken-question encoder output for ``rows`` (a subset that has spoken questions)."""
        if "spoken" in self.frozen:
            return self.frozen["spoken"].select(rows)
        features, mask = self.tensors.spoken_audio.batch(rows)
        return self.model.encode("audio", features, mask)


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
        at = self.position[rows]
        if bool((at < 0).any()):
            missing = rows[at < 0].tolist()[:5]
            raise ValueError(f"rows {missing} were not encoded by encode_frozen")
        starts, lengths = self.offsets[at], self.offsets[at + 1] - self.offsets[at]
        longest = int(lengths.max()) if len(rows) else 0
        steps = torch.arange(longest)
        inside = steps < lengths[:, None]  # (B, T)
        source = (starts[:, None] + steps)[inside]
        tokens = self.tokens.new_zeros(len(rows), longest, self.tokens.shape[-1])
        tokens[inside] = self.tokens[source]
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        mask[inside] = self.mask[source]
        return EncoderOutput(tokens, mask, self.pooled[at])


@contextmanager
def _evaluating(model: TriModalModel) -> Iterator[None]:
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
    steps = torch.arange(1, mask.shape[1] + 1)
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
    with _evaluating(model):
        for start in range(0, len(rows), chunk):
            part = encode(rows[start : start + chunk])
            used = _used_length(part.mask)
            inside = torch.arange(part.mask.shape[1]) < used[:, None]
            tokens.append(part.tokens[inside])
            masks.append(part.mask[inside])
            lengths.append(used)
            pooled.append(part.pooled)
    offsets = F.pad(torch.cat(lengths).cumsum(0), (1, 0))
    position = torch.full((total_rows,), -1, dtype=torch.long)
    position[rows] = torch.arange(len(rows))
    return FrozenOutputs(torch.cat(tokens), torch.cat(masks), offsets, torch.cat(pooled), position)


def freeze_perception(
    model: TriModalModel, tensors: SceneTensors, rows: torch.Tensor, towers: set[str]
) -> dict[str, FrozenOutputs]:
    """Fixed outputs of ``rows`` for ``towers``: ``image`` (the images), ``audio`` (spoken
    captions; a row without one gets an empty mask, as in a step's batch) and ``spoken``
    (spoken questions, of the rows that have one; none without any, as no step asks for
    them then)."""
    total = len(tensors.images)
    encoders = row_encoders(model, tensors)
    frozen: dict[str, FrozenOutputs] = {}
    for tower in ("image", "audio"):
        if tower in towers:
            frozen[tower] = encode_frozen(model, encoders[tower], rows, total)
    with_spoken = rows[tensors.spoken_index[rows] >= 0]
    if "spoken" in towers and len(with_spoken):
        frozen["spoken"] = encode_frozen(
            model,
            lambda r: model.encode("audio", *tensors.spoken_audio.batch(r)),
            with_spoken,
            total,
        )
    return frozen


@dataclass
class BindTargets:
    """Fixed inputs of stage 2c (``train.bind``), for the training rows that have both
    modalities: ``features [R, D]`` (the follower's pooled output before its projection),
    ``anchors [R, E]`` (L2-normalized anchor embeddings), ``groups [R]`` (content ids: equal
    ids are captions of identical content) and ``position[row]`` (index among the R, or -1)."""

    modality: str
    features: torch.Tensor
    anchors: torch.Tensor
    groups: torch.Tensor
    position: torch.Tensor


def bind_targets(
    model: TriModalModel,
    tensors: SceneTensors,
    rows: torch.Tensor,
    modality: str,
    anchor: str,
    chunk: int = 256,
) -> BindTargets:
    """Encode ``rows`` once (eval mode, no gradient) for stage 2c; see :class:`BindTargets`."""
    rows = rows[tensors.has(modality)[rows] & tensors.has(anchor)[rows]]
    if len(rows) < 2:
        raise ValueError(
            f"train.bind needs at least 2 training rows with both {modality} and {anchor}, "
            f"found {len(rows)}"
        )
    encoders = row_encoders(model, tensors)
    pooler = cast(nn.Module, model.encoders[modality].pooler)
    features, anchors = [], []
    with _evaluating(model):
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            follower = encoders[modality](part)
            features.append(pooler(follower.tokens, follower.mask))
            anchors.append(F.normalize(encoders[anchor](part).pooled, dim=-1))
    position = torch.full((len(tensors.images),), -1, dtype=torch.long)
    position[rows] = torch.arange(len(rows))
    groups = content_groups([tensors.content_keys[i] for i in rows.tolist()])
    return BindTargets(modality, torch.cat(features), torch.cat(anchors), groups, position)


def bind_loss(step: StepInputs, targets: BindTargets) -> torch.Tensor:
    """InfoNCE from the step's rows, through the trainable projection, to every anchor.

    Logits ``[B, R]`` are the model's (fixed) temperature times cosine similarities; a row's
    target is its own anchor, and other rows of identical content are left out of its
    negatives. Rows without both modalities are skipped.
    """
    at = targets.position[step.rows]
    at = at[at >= 0]
    projection = cast(nn.Linear, step.model.encoders[targets.modality].projection)
    if at.numel() == 0:  # zero, attached to the one trainable module of the stage
        return projection.weight.sum() * 0.0
    embedded = F.normalize(projection(targets.features[at]), dim=-1)  # (B, E)
    scale = step.model.temperature().exp().clamp(max=MAX_SCALE).detach()
    logits = scale * embedded @ targets.anchors.T  # (B, R)
    duplicate = targets.groups[at][:, None] == targets.groups[None, :]
    duplicate[torch.arange(len(at)), at] = False
    return F.cross_entropy(logits.masked_fill(duplicate, float("-inf")), at)


def _zero_loss(step: StepInputs) -> torch.Tensor:
    """A zero loss attached to the graph, for a step with no rows for a task."""
    return step.model.cls_token.sum() * 0.0


def contrastive_loss(
    step: StepInputs,
    pairs: list[tuple[str, str]],
    kind: str,
    margin: float,
    gather: bool,
    anchors: dict[str, str] | None = None,
    anchor_gradient: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pairwise contrastive loss over the modalities the pairs name, each pair aligned on the
    rows that have both (:func:`present_rows`)."""
    needed = {m for pair in pairs for m in pair}
    encoders = {"image": step.image, "text": step.text, "audio": step.audio}
    rows = {m: present_rows(step, m) for m in sorted(needed)}
    embeddings = {m: encoders[m]().pooled[rows[m]] for m in sorted(needed)}
    if kind not in ("info_nce", "cosine"):
        raise ValueError(f"train.align.loss must be 'info_nce' or 'cosine', got {kind!r}")
    output = pairwise_contrastive(
        embeddings,
        rows,
        pairs,
        step.model.temperature(),
        kind="cosine" if kind == "cosine" else "info_nce",
        margin=margin,
        gather=gather,
        anchors=anchors,
        anchor_gradient=anchor_gradient,
    )
    return output.total, output.parts


def present_rows(step: StepInputs, modality: str) -> torch.Tensor:
    """Batch positions ``[B_m]`` of the step's rows that have ``modality``: a sample may lack
    any of them, and a missing one's encoding (of a blank image, an empty clip or caption)
    would otherwise enter the contrastive loss as if it were a real example."""
    return torch.arange(len(step.rows))[step.tensors.has(modality)[step.rows]]


def typed_vqa_loss(
    step: StepInputs,
    questions_per_scene: int,
    pool: QuestionPool | None = None,
    grounding_weight: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy of answers to typed questions, ``questions_per_scene`` sampled per scene.

    With a ``pool`` the questions come from it instead of the stored ones, and a model with a
    grounding head adds ``grounding_weight`` times the cross-entropy of the named objects'
    cells.
    """
    if pool is not None:
        answer, grounding = pooled_vqa_losses(step, questions_per_scene, pool)
        if grounding is None or grounding_weight == 0:
            return answer
        return answer + grounding_weight * grounding
    tensors, rows = step.tensors, step.rows
    answers = tensors.answers[rows]  # (B, Q)
    valid = answers >= 0
    scores = torch.rand(answers.shape, generator=step.generator).masked_fill(~valid, -1.0)
    count = min(questions_per_scene, answers.shape[1])
    chosen = scores.topk(count, dim=1).indices  # (B, k)
    scene = torch.arange(len(rows)).unsqueeze(1).expand_as(chosen).reshape(-1)
    question = chosen.reshape(-1)
    keep = valid[scene, question]
    scene, question = scene[keep], question[keep]
    if scene.numel() == 0:
        return _zero_loss(step)
    ids = tensors.question_ids[rows[scene], question]
    mask = tensors.question_mask[rows[scene], question]
    encoded = step.model.encode_question(ids, mask).sequence()
    image = step.image()
    image_tokens = step.model.image_context(image)
    inputs = {
        "image": image_tokens.select(scene),
        "text": encoded,
    }
    logits = step.model.answer_logits(inputs)
    return F.cross_entropy(logits, answers[scene, question])


def pooled_vqa_losses(
    step: StepInputs, questions_per_scene: int, pool: QuestionPool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(answer cross-entropy, grounding cross-entropy) of ``questions_per_scene`` questions
    drawn from ``pool`` per scene; the grounding part is None for a model without the head."""
    scene, index = pool.sample(step.rows, questions_per_scene, step.generator)
    if scene.numel() == 0:
        return _zero_loss(step), None
    encoded = step.model.encode_question(pool.ids[index], pool.mask[index]).sequence()
    image_tokens = step.model.image_context(step.image())
    inputs = step.model.visible_inputs({"image": image_tokens.select(scene), "text": encoded})
    state = step.model.fuse(inputs)
    answer = F.cross_entropy(step.model.answer_head(state), pool.answers[index])
    if step.model.grounding_head is None:
        return answer, None
    return answer, grounding_loss(step.model.grounding_logits(state), pool.grounding[index])


def grounding_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the known cells of ``logits [M, S, bins]`` / ``targets [M, S]``
    (``IGNORE`` entries skipped; zero, still attached to the graph, when none is known)."""
    known = targets != IGNORE
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], targets[known])


def spoken_vqa_loss(step: StepInputs) -> torch.Tensor:
    """Cross-entropy of answers to spoken questions (rows that have one)."""
    tensors, rows = step.tensors, step.rows
    index = tensors.spoken_index[rows]
    has = index >= 0
    if not bool(has.any()):
        return _zero_loss(step)
    scene = torch.nonzero(has).squeeze(1)
    targets = tensors.answers[rows[scene], index[scene]]
    known = targets >= 0
    scene, targets = scene[known], targets[known]
    if scene.numel() == 0:
        return _zero_loss(step)
    spoken = step.spoken(rows[scene]).sequence()
    image_tokens = step.model.image_context(step.image())
    inputs = {
        "image": image_tokens.select(scene),
        "audio": spoken,
    }
    return F.cross_entropy(step.model.answer_logits(inputs, transcribe=False), targets)


def transcribe_loss(step: StepInputs) -> torch.Tensor:
    """CTC loss (mean over rows, each normalized by its target length) of the transcriber on
    the spoken questions of the step's rows that have one, against their words' token ids.

    A clip with fewer audio tokens than its transcript can be aligned to contributes zero
    (``zero_infinity``) instead of an infinite loss."""
    transcriber = step.model.transcriber
    if transcriber is None:
        raise ValueError("the transcribe task needs model.transcriber_depth > 0")
    tensors, rows = step.tensors, step.rows
    index = tensors.spoken_index[rows]
    rows, question = rows[index >= 0], index[index >= 0]
    if rows.numel() == 0:
        return transcriber.out.weight.sum() * 0.0
    ids, mask = tensors.question_ids[rows, question], tensors.question_mask[rows, question]
    audio = step.spoken(rows)
    scores = transcriber(audio.tokens, audio.mask).log_softmax(-1).transpose(0, 1)  # (T, B, V+1)
    return F.ctc_loss(
        scores,
        ids[mask],
        audio.mask.sum(1),
        mask.sum(1),
        blank=transcriber.blank,
        zero_infinity=True,
    )


def attribute_loss(step: StepInputs) -> torch.Tensor:
    """Multi-label BCE of scene attributes from image tokens (rows with a scene graph)."""
    has = step.tensors.has_scene[step.rows]
    if not bool(has.any()):
        return _zero_loss(step)
    logits = step.model.attribute_logits(step.image())
    targets = step.tensors.attributes[step.rows]
    return F.binary_cross_entropy_with_logits(logits[has], targets[has])


def object_grid_targets(
    boxes: torch.Tensor, labels: torch.Tensor, grid: int, background: list[int]
) -> torch.Tensor:
    """Dense object targets for a ``grid x grid`` token layout: ``[B, 3, grid * grid]``.

    A token's cell is covered by an object when the cell centre lies within the object's
    radius (or half a cell, so a small object always owns the cell under its centre); of
    several covering objects the nearest centre wins. A covered cell gets that object's colour,
    shape and size index (-100, ignored, where the object's value is unknown); an uncovered one
    gets ``background`` (the "no object" class of each group).

    Args:
        boxes: ``[B, K, 3]`` centre ``x, y`` and radius as fractions of the image side.
        labels: ``[B, K, 3]`` colour, shape, size indices (-1 on padding rows of ``K``).
    """
    centres = (torch.arange(grid, dtype=boxes.dtype) + 0.5) / grid
    cell_y, cell_x = torch.meshgrid(centres, centres, indexing="ij")  # row-major like tokens
    dx = cell_x.reshape(1, 1, -1) - boxes[..., 0:1]  # (B, K, T)
    dy = cell_y.reshape(1, 1, -1) - boxes[..., 1:2]
    distance = (dx.square() + dy.square()).sqrt()
    reach = boxes[..., 2:3].clamp(min=0.5 / grid)
    present = (labels >= 0).any(-1, keepdim=True)  # (B, K, 1)
    covering = (distance < reach) & present
    nearest = distance.masked_fill(~covering, float("inf")).argmin(dim=1)  # (B, T)
    picked = labels.gather(1, nearest.unsqueeze(-1).expand(-1, -1, 3))  # (B, T, 3)
    picked = picked.masked_fill(picked < 0, -100)
    fill = torch.tensor(background, dtype=torch.long).expand_as(picked)
    return torch.where(covering.any(1).unsqueeze(-1), picked, fill).transpose(1, 2)


def object_loss(step: StepInputs) -> torch.Tensor:
    """Per-token cross-entropy of the object under each image token (colour, shape, size).

    Presence labels ("is there a star") tell the image tower *that* a shape is somewhere;
    dense targets tell every token *what* covers it, which teaches shape in far fewer steps.
    Rows without a placed scene graph are skipped.
    """
    model, tensors, rows = step.model, step.tensors, step.rows
    has = tensors.has_scene[rows] & (tensors.object_labels[rows] >= 0).any(-1).any(-1)
    if not bool(has.any()):
        return _zero_loss(step)
    classes = model.object_classes()
    targets = object_grid_targets(
        tensors.object_boxes[rows[has]],
        tensors.object_labels[rows[has]],
        model.image_grid,
        [c - 1 for c in classes],
    )
    logits = model.object_logits(step.image())
    losses = [
        F.cross_entropy(group[has].flatten(0, 1), targets[:, g].flatten(), ignore_index=-100)
        for g, group in enumerate(logits)
    ]
    return torch.stack(losses).sum()


IMAGE_TASK_LOSSES = {"attributes": attribute_loss, "objects": object_loss}


def check_tasks(names: list[str], allowed: tuple[str, ...], field_name: str) -> None:
    """Raise a clear error naming the config field when a task name is unknown."""
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"{field_name}: unknown task(s) {unknown}; choose from {list(allowed)}")


# -- stage 3: generation ---------------------------------------------------------------------
GENERATION_TASKS = ("caption", "transcribe", "vqa_typed", "vqa_spoken", "dialogue")


def _masked_ids(ids: torch.Tensor, mask: torch.Tensor) -> list[int]:
    return ids[mask].tolist()


def _pick_questions(step: StepInputs, count: int) -> torch.Tensor:
    """``[B, count]`` question slots per row, random among answered ones (-1: none left)."""
    answers = step.tensors.answers[step.rows]
    valid = answers >= 0
    scores = torch.rand(answers.shape, generator=step.generator).masked_fill(~valid, -1.0)
    picked = scores.topk(min(count, answers.shape[1]), dim=1)
    return picked.indices.masked_fill(picked.values < 0, -1)


def _answer_ids(step: StepInputs, row: int, question: int) -> list[int]:
    tokenizer = step.model.tokenizer
    assert tokenizer is not None
    answer = step.model.vocabulary.answers[int(step.tensors.answers[row, question])]
    return tokenizer.encode(answer)


def _question_ids(step: StepInputs, row: int, question: int) -> list[int]:
    tensors = step.tensors
    return _masked_ids(tensors.question_ids[row, question], tensors.question_mask[row, question])


def _captions(step: StepInputs, drawn: bool) -> tuple[list[list[int]], list[int] | None]:
    """Caption ids of each row, and the pool index of each (-1: stored) when drawn.

    A variant is drawn from ``step.captions`` when ``drawn`` and the row has any; otherwise
    the row keeps its stored caption (empty without one)."""
    tensors, rows, pool = step.tensors, step.rows, step.captions if drawn else None
    stored = [_masked_ids(tensors.caption_ids[r], tensors.caption_mask[r]) for r in rows.tolist()]
    if pool is None:
        return stored, None
    picked = pool.sample(rows, step.generator).tolist()
    captions = [
        caption if i < 0 else pool.caption_ids(i) for caption, i in zip(stored, picked, strict=True)
    ]
    return captions, picked


def _caption_grounding_loss(
    step: StepInputs, states: torch.Tensor, rows: Sequence[Sequence[int]], picked: Sequence[int]
) -> torch.Tensor:
    """Cross-entropy of the decoder's grounding head at the object-phrase tokens of each drawn
    caption: ``states [B, T, Dd]`` of the rendered ``rows`` (each ending in its caption and
    ``<eos>``), ``picked`` the pool index of each caption (-1: stored, no targets)."""
    head, pool = step.model.caption_grounding, step.captions
    assert head is not None and pool is not None
    cells = torch.full((*states.shape[:2], 2), IGNORE, dtype=torch.long)  # (B, T, 2)
    for i, (row, index) in enumerate(zip(rows, picked, strict=True)):
        if index >= 0:
            targets = pool.caption_cells(index)  # (C, 2)
            end = len(row) - 1  # the caption sits just before <eos>
            cells[i, end - len(targets) : end] = targets
    bins = head.out_features // 2
    return grounding_loss(head(states).view(*states.shape[:2], 2, bins), cells)


def generation_loss(step: StepInputs, task: str) -> torch.Tensor:
    """Next-token loss of the decoder on one generative task for the step's rows.

    ``caption``: image -> caption; ``transcribe``: spoken caption -> its text; ``vqa_typed``:
    image + typed question -> answer; ``vqa_spoken``: image + spoken question -> answer;
    ``dialogue``: image -> a caption turn then two question/answer turns.
    """
    model, tensors, rows = step.model, step.tensors, step.rows
    tokenizer = model.tokenizer
    if model.decoder is None or tokenizer is None:
        raise ValueError("stage 'generate' needs model.decoder.depth > 0")
    caption, picked = _captions(step, drawn=task in ("caption", "dialogue"))
    keep = torch.tensor([len(c) > 0 for c in caption])
    conversations: list[list[tuple[str, str | list[int]]]] = []
    if task == "caption":
        prefix = model.decoder_prefix(("image", step.image().sequence()))
        conversations = [[("user", CAPTION_PROMPT), ("assistant", c)] for c in caption]
    elif task == "transcribe":
        prefix = model.decoder_prefix(("audio", step.audio().sequence()))
        keep &= tensors.has_audio[rows]
        conversations = [[("user", TRANSCRIBE_PROMPT), ("assistant", c)] for c in caption]
    elif task in ("vqa_typed", "dialogue"):
        prefix = model.decoder_prefix(("image", step.image().sequence()))
        slots = _pick_questions(step, 1 if task == "vqa_typed" else 2)
        keep = (slots >= 0).all(1) & (keep if task == "dialogue" else True)
        for i, row in enumerate(rows.tolist()):
            turns: list[tuple[str, str | list[int]]] = []
            if task == "dialogue":
                turns += [("user", CAPTION_PROMPT), ("assistant", caption[i])]
            for q in slots[i].tolist():
                if q >= 0:
                    turns += [
                        ("user", _question_ids(step, row, q)),
                        ("assistant", _answer_ids(step, row, q)),
                    ]
            conversations.append(turns or [("user", ""), ("assistant", "")])
    elif task == "vqa_spoken":
        index = tensors.spoken_index[rows]
        keep = index >= 0
        if not bool(keep.any()):
            return _zero_loss(step)
        known = torch.nonzero(keep).squeeze(1)
        spoken = step.spoken(rows[known]).sequence()
        image = step.image().sequence().select(known)
        prefix = model.decoder_prefix(("image", image), ("audio", spoken))
        conversations = [
            [("user", SPOKEN_PROMPT), ("assistant", _answer_ids(step, int(rows[i]), int(index[i])))]
            for i in known.tolist()
        ]
        keep = torch.ones(len(known), dtype=torch.bool)
    else:
        raise ValueError(
            f"train.generate.tasks: unknown task {task!r}; choose from {GENERATION_TASKS}"
        )
    chosen = torch.nonzero(keep).squeeze(1)
    if chosen.numel() == 0:
        return _zero_loss(step)
    rendered = [render_ids(tokenizer, conversations[i], open_reply=False) for i in chosen.tolist()]
    ids, targets = [ids for ids, _ in rendered], [targets for _, targets in rendered]
    weight = model.config.train.generate.grounding_weight
    if task != "caption" or picked is None or weight == 0:
        return lm_loss(model.decoder, prefix.select(chosen), ids, targets, tokenizer.pad_id)
    states, labels = text_states(
        model.decoder, prefix.select(chosen), ids, targets, tokenizer.pad_id
    )
    chosen_picks = [picked[i] for i in chosen.tolist()]
    return next_token_loss(model.decoder, states, labels) + weight * _caption_grounding_loss(
        step, states, ids, chosen_picks
    )
