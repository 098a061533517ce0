"""Admission control: a bounded queue per model, shed at once when full, deadlines honoured.

Why: an unbounded queue turns overload into collapse. Every request waits
behind all the others, soon longer than its client does, and the server then
spends its cores on answers nobody reads (measured before this existed: at 3x
capacity with a 2 s client deadline, 4-34% of HTTP answers arrived in time
and ~22,000 runs were for clients that had left). A bounded queue keeps the
wait short for the requests it takes and refuses the rest at once, cheaply,
with 503 + Retry-After / RESOURCE_EXHAUSTED, which clients and load balancers
know to retry elsewhere.

- A model admits at most `max_requests` requests and `max_rows` rows at a
  time (queued or running). When both protocols are busy each may hold half:
  HTTP's many connections cannot crowd out gRPC's few threads, or the reverse.
- A request with a deadline is also refused at once when the queue ahead of
  it would take longer than its deadline: the requests held, over the rate
  the model has been finishing them (the last RATE_WINDOW completions). A
  place it could not use would only turn into work for nobody.
- A request carries its caller's deadline (gRPC's own, or Triton's `timeout`
  parameter in microseconds) and whether its caller is still there (gRPC's
  context, an HTTP disconnect). The batcher drops one whose deadline passed or
  whose caller left before it runs, so no run is spent on it.
- While a gRPC caller waits for its batch it holds no handler slot
  (`Caller.idle`), so waiting requests do not stop others from being read.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from predictors.errors import DeadlineExceeded, Overloaded


@dataclass(frozen=True)
class AdmissionConfig:
    #: requests one model holds at once (queued or running); more are shed
    max_requests: int = 128
    #: rows one model holds at once, across those requests
    max_rows: int = 4096


@dataclass(eq=False)
class Caller:
    """Who is waiting for a request, and until when."""

    protocol: str = "http"
    #: time.monotonic() after which the answer is of no use; None: no deadline
    deadline: float | None = None
    #: False once the caller has gone (cancelled, disconnected)
    alive: Callable[[], bool] = field(default=lambda: True)
    #: entered while waiting for a batch: a gRPC handler gives its slot back
    idle: Callable[[], AbstractContextManager[None]] = field(
        default=lambda: contextlib.nullcontext()
    )
    #: set when a run that includes this request begins
    started: bool = False

    def tighten(self, timeout_us: int | None) -> None:
        """Triton's `timeout` request parameter (microseconds) shortens the deadline."""
        if timeout_us is None:
            return
        deadline = time.monotonic() + timeout_us / 1e6
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self, model: str) -> None:
        """Raise now if running the request would be for nobody."""
        if self.expired():
            raise DeadlineExceeded(f"the deadline passed before model {model} could run it")


#: completions the finishing rate is measured over
RATE_WINDOW = 64


class Admission:
    """Counts what one model holds; `enter` admits a request or sheds it (Overloaded)."""

    def __init__(self, model: str, config: AdmissionConfig) -> None:
        self.model = model
        self.config = config
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self._rows = 0
        self._finished: deque[float] = deque(maxlen=RATE_WINDOW)

    def expected_wait(self) -> float | None:
        """Seconds the requests held now need to finish, at the recent rate (None: unknown)."""
        if len(self._finished) < RATE_WINDOW // 4:
            return None
        span = self._finished[-1] - self._finished[0]
        if span <= 0:
            return None
        return self.held * span / (len(self._finished) - 1)

    def refuses(self, protocol: str, rows: int = 1) -> str | None:
        """Why a request would be shed now, or None (no counting: a cheap early look)."""
        held = self._requests.get(protocol, 0)
        others = sum(n for p, n in self._requests.items() if p != protocol)
        limit = self.config.max_requests
        if held + others >= limit:
            return f"model {self.model} has {held + others} requests queued or running, its limit"
        if others and held >= math.ceil(limit / 2):
            return (
                f"model {self.model}: {protocol} holds its half of the queue "
                f"({held} of {limit}) while other protocols wait too"
            )
        if self._rows + rows > self.config.max_rows and self._rows:
            return (
                f"model {self.model} holds {self._rows} rows, its limit is {self.config.max_rows}"
            )
        return None

    @contextlib.contextmanager
    def enter(self, protocol: str, rows: int, remaining: float | None = None) -> Iterator[None]:
        """Hold a place for a request; `remaining` is its deadline in seconds, if any."""
        with self._lock:
            reason = self.refuses(protocol, rows)
            if reason is None and remaining is not None:
                wait = self.expected_wait()
                if wait is not None and wait > remaining:
                    reason = (
                        f"model {self.model} would not run it before its deadline "
                        f"({wait:.2f} s of work queued, {remaining:.2f} s left)"
                    )
            if reason is not None:
                raise Overloaded(f"{reason}: try again shortly")
            self._requests[protocol] = self._requests.get(protocol, 0) + 1
            self._rows += rows
        try:
            yield
        finally:
            with self._lock:
                self._requests[protocol] -= 1
                self._rows -= rows
                self._finished.append(time.monotonic())

    @property
    def held(self) -> int:
        return sum(self._requests.values())
