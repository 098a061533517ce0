"""Dynamic batching: concurrent requests for one model run as one batch.

It works like a database's group commit. A caller that finds no batch running
leads: it takes its own request and whatever else is queued (waiting up to
max_queue_delay_ms for more, if that is set), up to max_rows rows, runs
them as one batch and hands each caller exactly its own rows. Callers that
arrive while a batch runs queue up, and the next batch takes them all at once.

Why a leader rather than a batching thread: at low load a request then runs
in the thread that received it, with no hand-off to another thread and back
(on a small CPU each costs about as much as the model). Under load there is one
hand-off per batch, not per request.

gRPC handlers are threads, so they lead themselves. Callers on the event loop
(HTTP) must never run a model there: they queue, and when no batch is running
they start one on the batcher's executor. When a batch ends with callers
waiting, the first of them leads the next batch: in its own thread if it is a
gRPC handler, else on the executor. So a leader's own response is never held
up by other callers' batches.

Each protocol queues apart, and a batch takes from the queues in turn: under
load from both, each gets its share of every batch (predictors.admission
bounds what each may queue). A caller whose deadline passed, or who left,
is dropped when its batch forms, before anything runs for it; one waiting in
a thread also leaves the queue by itself at its deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np

from predictors.admission import Caller
from predictors.errors import ClientGone, DeadlineExceeded
from predictors.metadata import BatchingConfig

Arrays = dict[str, np.ndarray]


@dataclass(eq=False)
class _Pending:
    inputs: Arrays
    rows: int
    caller: Caller = field(default_factory=Caller)
    future: Future[Arrays] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)
    #: set for callers waiting in a thread: woken with their rows, or to lead
    wake: threading.Event | None = None
    lead: bool = False

    def fits_with(self, other: _Pending) -> bool:
        """Rows can be stacked only if every tensor agrees beyond the batch axis."""
        return all(a.shape[1:] == other.inputs[n].shape[1:] for n, a in self.inputs.items())


class DynamicBatcher:
    def __init__(
        self,
        run: Callable[[Arrays, int], Arrays],
        config: BatchingConfig,
        executor: Executor,
        on_queue_wait: Callable[[float], None] = lambda seconds: None,
        on_wasted: Callable[[Caller], None] = lambda caller: None,
    ) -> None:
        self._run = run
        self._limit = config.max_rows
        self._delay = config.max_queue_delay_ms / 1000.0
        self._executor = executor
        self._on_queue_wait = on_queue_wait
        # Rows computed for a caller who left while its batch ran: work wasted.
        self._on_wasted = on_wasted
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        # One FIFO per protocol, taken from in turn (the module docstring).
        self._queues: dict[str, deque[_Pending]] = {}
        self._turn = 0
        self._queued_rows = 0
        # True from the moment a leader is chosen until its batch is done and
        # the next one (if any) is handed on: at most one batch runs at a time.
        self._leading = False

    def infer(self, inputs: Arrays, rows: int, caller: Caller | None = None) -> Arrays:
        """Blocking, for a worker thread: may run the batch in this thread."""
        caller = caller or Caller()
        pending, lead = self._enqueue(inputs, rows, caller, threading.Event())
        assert pending.wake is not None
        patient = caller.deadline is None
        while True:
            if lead:
                self._lead()
            if pending.future.done():
                return pending.future.result()
            with caller.idle():
                woken = pending.wake.wait(None if patient else max(0.0, caller.remaining() or 0))
            if not woken and self._abandon(pending):
                raise DeadlineExceeded("the deadline passed while the request waited for its batch")
            # Too late to leave (running, or chosen to lead): see it through.
            patient = patient or not woken
            pending.wake.clear()
            with self._lock:
                lead, pending.lead = pending.lead, False

    async def infer_async(self, inputs: Arrays, rows: int, caller: Caller | None = None) -> Arrays:
        """For the event loop: the batch always runs on the executor."""
        pending, lead = self._enqueue(inputs, rows, caller or Caller())
        if lead:
            self._lead_on_executor()
        # Cancelling this (the client went away) cancels the pending future,
        # and a batch that has not started yet leaves its rows out.
        return await asyncio.wrap_future(pending.future)

    def _enqueue(
        self, inputs: Arrays, rows: int, caller: Caller, wake: threading.Event | None = None
    ) -> tuple[_Pending, bool]:
        pending = _Pending(inputs, rows, caller, wake=wake)
        with self._lock:
            self._queues.setdefault(caller.protocol, deque()).append(pending)
            self._queued_rows += rows
            lead = not self._leading
            self._leading = True
            self._arrived.notify()
        return pending, lead

    def _abandon(self, pending: _Pending) -> bool:
        """Take a waiting thread's request out: False if it runs, or leads, already."""
        with self._lock:
            return not pending.lead and pending.future.cancel()

    def _lead(self) -> None:
        try:
            self._run_batch(self._take_batch())
        finally:
            with self._lock:
                head = self._next_leader()
                self._leading = head is not None
                if head is not None and head.wake is not None:
                    head.lead = True
            if head is not None and head.wake is not None:
                # A thread is waiting for these rows anyway: it runs the
                # next batch, which saves waking the executor as well.
                head.wake.set()
            elif head is not None:
                self._lead_on_executor()

    def _next_leader(self) -> _Pending | None:
        """The oldest queued request still wanted; those that left are cleared away."""
        for queue in self._queues.values():
            while queue and queue[0].future.cancelled():
                self._queued_rows -= queue.popleft().rows
        heads = [q[0] for q in self._queues.values() if q]
        return min(heads, key=lambda p: p.enqueued) if heads else None

    def _lead_on_executor(self) -> None:
        try:
            self._executor.submit(self._lead)
        except RuntimeError as exc:  # the executor is shut down: the model is stopping
            with self._lock:
                stranded = [p for q in self._queues.values() for p in q]
                self._queues, self._queued_rows, self._leading = {}, 0, False
            for pending in stranded:
                if pending.future.set_running_or_notify_cancel():
                    pending.future.set_exception(RuntimeError(f"model stopped: {exc}"))
                _wake(pending)

    def _take_batch(self) -> list[_Pending]:
        with self._lock:
            if self._delay > 0:
                deadline = time.perf_counter() + self._delay
                while self._queued_rows < self._limit:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._arrived.wait(remaining)
            # The queues in turn, starting one further each batch; from each,
            # its oldest while it fits. The first request always runs, even
            # one larger than the limit.
            queues = [q for q in self._queues.values() if q]
            if queues:
                self._turn = (self._turn + 1) % len(queues)
                queues = queues[self._turn :] + queues[: self._turn]
            batch: list[_Pending] = []
            rows = 0
            taking = True
            while taking and rows < self._limit:
                taking = False
                for queue in queues:
                    if not queue:
                        continue
                    head = queue[0]
                    if batch and (rows + head.rows > self._limit or not head.fits_with(batch[0])):
                        continue
                    batch.append(queue.popleft())
                    rows += head.rows
                    taking = True
            self._queued_rows -= rows
        return batch

    def _run_batch(self, batch: list[_Pending]) -> None:
        now = time.perf_counter()
        # Callers that gave up, left or ran out of time need no rows computed.
        batch = [p for p in batch if p.future.set_running_or_notify_cancel() and _wanted(p)]
        if not batch:
            return
        for pending in batch:
            pending.caller.started = True
            self._on_queue_wait(now - pending.enqueued)
        try:
            if len(batch) == 1:
                merged = batch[0].inputs
            else:
                merged = {
                    name: np.concatenate([p.inputs[name] for p in batch])
                    for name in batch[0].inputs
                }
            outputs = self._run(merged, sum(p.rows for p in batch))
        except Exception as exc:
            for pending in batch:
                pending.future.set_exception(exc)
                _wake(pending)
            return
        start = 0
        for pending in batch:
            end = start + pending.rows
            pending.future.set_result({n: v[start:end] for n, v in outputs.items()})
            _wake(pending)
            start = end
            if not pending.caller.alive():
                self._on_wasted(pending.caller)


def _wanted(pending: _Pending) -> bool:
    """Fail the request here (and wake its caller) if nobody needs its rows any more."""
    if pending.caller.expired():
        pending.future.set_exception(
            DeadlineExceeded("the deadline passed while the request waited for its batch")
        )
    elif not pending.caller.alive():
        pending.future.set_exception(ClientGone("the client left before its batch ran"))
    else:
        return True
    _wake(pending)
    return False


def _wake(pending: _Pending) -> None:
    if pending.wake is not None:
        pending.wake.set()
