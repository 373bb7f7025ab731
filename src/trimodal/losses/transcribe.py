"""The transcriber's CTC loss on spoken questions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trimodal.losses.step import StepInputs


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
