"""Next-token losses of the decoder's tasks: captions, transcripts, answers and dialogues."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trimodal.generation.chat import CAPTION_PROMPT, SPOKEN_PROMPT, TRANSCRIBE_PROMPT, render_ids
from trimodal.generation.conditioning import lm_loss, next_token_loss, text_states
from trimodal.losses.step import StepInputs, zero_loss
from trimodal.losses.vqa import grounding_loss
from trimodal.world.question_pool import IGNORE

GENERATION_TASKS = ("caption", "transcribe", "vqa_typed", "vqa_spoken", "dialogue")


def _masked_ids(ids: torch.Tensor, mask: torch.Tensor) -> list[int]:
    return ids[mask].tolist()


def _pick_questions(step: StepInputs, count: int) -> torch.Tensor:
    """``[B, count]`` question slots per row, random among answered ones (-1: none left)."""
    answers = step.tensors.answers[step.rows]
    valid = answers >= 0
    draws = torch.rand(answers.shape, generator=step.generator, device="cpu")  # same everywhere
    scores = draws.to(answers.device).masked_fill(~valid, -1.0)
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
    picked = pool.sample(rows.cpu(), step.generator).tolist()  # a host pool, a CPU generator
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
    cells = torch.full((*states.shape[:2], 2), IGNORE, dtype=torch.long, device=states.device)
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
    keep = torch.tensor([len(c) > 0 for c in caption], device=rows.device)
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
            return zero_loss(step)
        known = torch.nonzero(keep).squeeze(1)
        spoken = step.spoken(rows[known]).sequence()
        image = step.image().sequence().select(known)
        prefix = model.decoder_prefix(("image", image), ("audio", spoken))
        conversations = [
            [("user", SPOKEN_PROMPT), ("assistant", _answer_ids(step, int(rows[i]), int(index[i])))]
            for i in known.tolist()
        ]
        keep = torch.ones(len(known), dtype=torch.bool, device=known.device)
    else:
        raise ValueError(
            f"train.generate.tasks: unknown task {task!r}; choose from {GENERATION_TASKS}"
        )
    chosen = torch.nonzero(keep).squeeze(1)
    if chosen.numel() == 0:
        return zero_loss(step)
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
