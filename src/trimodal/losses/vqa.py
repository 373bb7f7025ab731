"""Answer losses of typed and spoken questions, and the grounding loss of named objects."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trimodal.losses.step import StepInputs, zero_loss
from trimodal.world.question_pool import IGNORE, QuestionPool


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
    draws = torch.rand(answers.shape, generator=step.generator, device="cpu")  # same everywhere
    scores = draws.to(answers.device).masked_fill(~valid, -1.0)
    count = min(questions_per_scene, answers.shape[1])
    chosen = scores.topk(count, dim=1).indices  # (B, k)
    scene = torch.arange(len(rows), device=rows.device).unsqueeze(1).expand_as(chosen).reshape(-1)
    question = chosen.reshape(-1)
    keep = valid[scene, question]
    scene, question = scene[keep], question[keep]
    if scene.numel() == 0:
        return zero_loss(step)
    ids = tensors.question_ids[rows[scene], question]
    mask = tensors.question_mask[rows[scene], question]
    encoded = step.model.encode_question(ids, mask).sequence()
    inputs = step.context(scene) | {"text": encoded}
    logits = step.model.answer_logits(inputs)
    return F.cross_entropy(logits, answers[scene, question])


def pooled_vqa_losses(
    step: StepInputs, questions_per_scene: int, pool: QuestionPool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(answer cross-entropy, grounding cross-entropy) of ``questions_per_scene`` questions
    drawn from ``pool`` per scene; the grounding part is None for a model without the head."""
    # The pool lives on the host and draws with the step's CPU generator; what it picks moves.
    scene, index = pool.sample(step.rows.cpu(), questions_per_scene, step.generator)
    if scene.numel() == 0:
        return zero_loss(step), None
    device = step.rows.device
    encoded = step.model.encode_question(pool.ids[index], pool.mask[index]).sequence()
    inputs = step.model.visible_inputs(step.context(scene.to(device)) | {"text": encoded})
    state = step.model.fuse(inputs)
    answer = F.cross_entropy(step.model.answer_head(state), pool.answers[index].to(device))
    if step.model.grounding_head is None:
        return answer, None
    grounding = pool.grounding[index].to(device)
    return answer, grounding_loss(step.model.grounding_logits(state), grounding)


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
        return zero_loss(step)
    scene = torch.nonzero(has).squeeze(1)
    targets = tensors.answers[rows[scene], index[scene]]
    known = targets >= 0
    scene, targets = scene[known], targets[known]
    if scene.numel() == 0:
        return zero_loss(step)
    spoken = step.spoken(rows[scene]).sequence()
    inputs = step.context(scene) | {"audio": spoken}
    return F.cross_entropy(step.model.answer_logits(inputs, transcribe=False), targets)
