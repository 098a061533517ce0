"""Dynamic batching: concurrent requests for one model run as one batch.

A single worker takes the first waiting request, adds whatever else is
already queued (and, if max_queue_delay_ms > 0, whatever arrives within that
delay) up to max_batch_size rows, runs the batch in a thread and hands each
caller exactly its own rows back. With nothing else queued a request runs at
once, so batching costs no latency at low load.

Batches that take the model less than INLINE_RUN_SECONDS (measured, as a
moving average) run on the event loop thread itself instead of a worker
thread: the hand-off to a thread and back is two thread wake-ups, which cost
more than a small model's whole run, and on a busy 2-core pod much more.
Slower models keep the worker thread, so the loop stays free to take in the
next requests (and so to form the next batch) while they run.
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

# Above this a batch blocks the event loop for longer than a thread hand-off
# costs even on a busy node; such models run in the executor.
INLINE_RUN_SECONDS = 0.0005
# Weight of the newest batch in the moving average of run time.
RUN_TIME_SMOOTHING = 0.2


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
        # Moving average of seconds per batch; None until the first batch has
        # run (in the executor, as nothing is known about the model yet).
        self._run_seconds: float | None = None

    @property
    def runs_inline(self) -> bool:
        return self._run_seconds is not None and self._run_seconds < INLINE_RUN_SECONDS

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
        try:
            if self.runs_inline:
                outputs, seconds = self._timed_run(merged, rows)
            else:
                loop = asyncio.get_running_loop()
                outputs, seconds = await loop.run_in_executor(
                    self._executor, self._timed_run, merged, rows
                )
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        if self._run_seconds is None:
            self._run_seconds = seconds
        else:
            self._run_seconds += RUN_TIME_SMOOTHING * (seconds - self._run_seconds)
        start = 0
        for pending in batch:
            end = start + pending.rows
            if not pending.future.done():
                pending.future.set_result({n: v[start:end] for n, v in outputs.items()})
            start = end

    def _timed_run(self, inputs: Arrays, rows: int) -> tuple[Arrays, float]:
        """The run and its duration, timed where it runs (no hand-off in the figure)."""
        start = time.perf_counter()
        outputs = self._run(inputs, rows)
        return outputs, time.perf_counter() - start
