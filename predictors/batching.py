"""Dynamic batching: concurrent requests for one model run as one batch.

A single worker takes the first waiting request, adds whatever else is
already queued (and, if max_queue_delay_ms > 0, whatever arrives within that
delay) up to max_batch_size rows, runs the batch in a thread and hands each
caller exactly its own rows back. With nothing else queued a request runs at
once, so batching costs no latency at low load.

Batches always run in the executor, never on the event loop: the loop keeps
taking in (and decoding) the next requests while a batch runs, which is what
lets the next batch form, and a slow batch can never stall health checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from predictors.metadata import BatchingConfig

Arrays = dict[str, np.ndarray]


@dataclass
class _Pending:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(
        self,
        run: Callable[[Arrays, int], Arrays],
        config: BatchingConfig,
        executor: Executor,
        on_queue_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._run = run
        self._config = config
        self._executor = executor
        self._on_queue_wait = on_queue_wait
        self._queue: asyncio.Queue[_Pending] | None = None
        self._carry: _Pending | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, inputs: Arrays, rows: int) -> Arrays:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="dynamic-batcher")
        future: asyncio.Future[Arrays] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(inputs, rows, future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _next(self, timeout: float | None) -> _Pending | None:
        assert self._queue is not None
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            if timeout is None:
                return await self._queue.get()
            if timeout <= 0:
                return None
            try:
                return await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                return None

    async def _work(self) -> None:
        limit = self._config.max_batch_size
        delay = self._config.max_queue_delay_ms / 1000.0
        while True:
            first = await self._next(None)
            assert first is not None
            batch, rows = [first], first.rows
            deadline = time.perf_counter() + delay
            while rows < limit:
                item = await self._next(deadline - time.perf_counter())
                if item is None:
                    break
                if rows + item.rows > limit:
                    self._carry = item
                    break
                batch.append(item)
                rows += item.rows
            # Callers that gave up (client gone) need no rows computed.
            batch = [p for p in batch if not p.future.done()]
            if not batch:
                continue
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        now = time.perf_counter()
        for pending in batch:
            self._on_queue_wait(now - pending.enqueued)
        if len(batch) == 1:
            merged = batch[0].inputs
        else:
            merged = {
                name: np.concatenate([p.inputs[name] for p in batch]) for name in batch[0].inputs
            }
        rows = sum(p.rows for p in batch)
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, merged, rows)
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        start = 0
        for pending in batch:
            end = start + pending.rows
            if not pending.future.done():
                pending.future.set_result({n: v[start:end] for n, v in outputs.items()})
            start = end
