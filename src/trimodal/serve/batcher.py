"""Dynamic batching: requests that arrive together run as one batch.

A request waits at most ``wait_ms`` for others to join it (or until ``max_batch`` have); the
batch then runs in the model's executor thread while the next batch gathers. Under load the
window hardly matters: whatever queued while one batch ran forms the next. A lone client pays
no window: the wait applies only after a batch that served more than one request (clients are
arriving together); the items one request submits together (:meth:`DynamicBatcher.submit_many`)
count as one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class DynamicBatcher(Generic[Item, Result]):
    """Gathers items submitted from many coroutines and runs them through ``run_batch``.

    Args:
        run_batch: items -> one result per item, in order (runs in ``executor``).
        executor: where batches run (one thread: batches never overlap on the model).
        max_batch: most items in one batch.
        wait_ms: how long the first item of a batch waits for company.
        on_batch: told each batch's size (metrics).

    A batch that raises is re-run one item at a time, so one bad item fails alone.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], Sequence[Result]],
        executor: Executor,
        max_batch: int = 32,
        wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch < 1 or wait_ms < 0:
            raise ValueError(f"need max_batch >= 1 and wait_ms >= 0, got {max_batch}, {wait_ms}")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.wait = wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result], int]] | None = None
        self._requests = 0
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result (or its exception)."""
        (result,) = await self.submit_many([item])
        return result

    async def submit_many(self, items: Sequence[Item]) -> list[Result]:
        """Queue the items of one request together; their results in order (the first
        exception raised if any item failed)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._serve(self._queue))
        self._requests += 1
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Result]] = [loop.create_future() for _ in items]
        for item, future in zip(items, futures, strict=True):
            await self._queue.put((item, future, self._requests))
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Stop the worker (pending items are cancelled)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
            self._queue = None

    async def _serve(self, queue: asyncio.Queue[tuple[Item, asyncio.Future[Result], int]]) -> None:
        loop = asyncio.get_running_loop()
        last_requests = 1
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + (self.wait if last_requests > 1 else 0.0)
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(item, future) for item, future, _ in batch if not future.done()]
            last_requests = len({request for _, _, request in batch})
            if not live:
                continue
            if self.on_batch is not None:
                self.on_batch(len(live))
            outcomes = await loop.run_in_executor(
                self.executor, self._run, [item for item, _ in live]
            )
            for (_, future), outcome in zip(live, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _run(self, items: list[Item]) -> list[Result | BaseException]:
        """The batch's results, or each item's own result or exception after a failure."""
        try:
            return list(self.run_batch(items))
        except Exception as batch_error:
            if len(items) == 1:
                return [batch_error]
        outcomes: list[Result | BaseException] = []
        for item in items:
            try:
                outcomes.extend(self.run_batch([item]))
            except Exception as error:
                outcomes.append(error)
        return outcomes
