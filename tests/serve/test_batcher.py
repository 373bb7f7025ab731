"""Dynamic batching: concurrent items share batches, results stay in order, a bad item fails
alone, and a batched question is answered as it is alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trimodal.data.manifest import load_manifest
from trimodal.inference import Model, Question
from trimodal.serve.batcher import DynamicBatcher
from trimodal.world.generate import WorldSummary


def test_concurrent_items_are_batched_in_order() -> None:
    sizes: list[int] = []

    def square(items: Sequence[int]) -> list[int]:
        return [i * i for i in items]

    async def run() -> list[int]:
        batcher = DynamicBatcher(
            square, ThreadPoolExecutor(1), max_batch=8, wait_ms=50, on_batch=sizes.append
        )
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        finally:
            await batcher.close()

    assert asyncio.run(run()) == [i * i for i in range(20)]
    assert sum(sizes) == 20 and max(sizes) == 8 and len(sizes) == 3


def test_a_failing_item_fails_alone() -> None:
    def invert(items: Sequence[int]) -> list[float]:
        return [1 / i for i in items]

    async def run() -> list[object]:
        batcher = DynamicBatcher(invert, ThreadPoolExecutor(1), max_batch=8, wait_ms=20)
        try:
            return await asyncio.gather(
                *(batcher.submit(i) for i in (1, 0, 4)), return_exceptions=True
            )
        finally:
            await batcher.close()

    first, bad, last = asyncio.run(run())
    assert first == 1.0 and last == 0.25 and isinstance(bad, ZeroDivisionError)


def test_batcher_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(list, ThreadPoolExecutor(1), max_batch=0)


def test_ask_batch_answers_each_question_as_ask_does(
    head_model: Model, tiny_world: tuple[Path, WorldSummary]
) -> None:
    samples = load_manifest(tiny_world[0] / "manifest.jsonl").split("test", "val")[:6]
    questions, expected = [], []
    for number, sample in enumerate(samples):
        record = sample.questions[0]  # the spoken one
        assert sample.image is not None and record.spoken_question is not None
        if number % 2:
            questions.append(Question(sample.image, audio=record.spoken_question))
            expected.append(head_model.ask(sample.image, audio=record.spoken_question, top=2))
        else:
            typed = sample.questions[-1].question
            questions.append(Question(sample.image, text=typed))
            expected.append(head_model.ask(sample.image, text=typed, top=2))
    got = head_model.ask_batch(questions, top=2)
    for row, want in zip(got, expected, strict=True):
        assert [a for a, _ in row] == [a for a, _ in want]
        assert [p for _, p in row] == pytest.approx([p for _, p in want], abs=1e-5)
    with pytest.raises(ValueError, match="exactly one of text= or audio="):
        Question(samples[0].image or "", text="a", audio="b.wav")
