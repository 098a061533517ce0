"""Closed-loop load and what it measured: one Cell per combination.

Each of C callers sends its next request as soon as the last one came back.
Throughput counts requests that finished inside the measured window; latency
uses those wholly inside it; CPU time and the server's batch counters are
sampled at the window's ends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# A request that takes longer than this is an error, so a stuck server cannot
# stall the bench; each cell also stops issuing requests at its deadline.
REQUEST_TIMEOUT_S = 30.0

RAW = "raw"
SERVED = "modelplane"
#: the naive KServe custom predictor (predictors.bench.kserve_baseline)
KSERVE = "kserve"


@dataclass
class Cell:
    """One measured combination; `target` is raw (in-process), modelplane or kserve."""

    model: str
    target: str
    runtime: str  # onnxruntime | torchscript | torch.export
    protocol: str  # grpc | http | in-process
    batching: str  # on | off | - (raw, kserve)
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    throughput_rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    #: this cell over the raw runtime at the same concurrency (None for raw)
    throughput_vs_raw: float | None = None
    p50_vs_raw: float | None = None
    #: CPU seconds the server process (and this load generator) spent in the
    #: measured window, per request that finished in it, in microseconds
    server_cpu_us: float | None = None
    client_cpu_us: float | None = None
    #: the server's CPU time over the window's length (200 = two cores busy)
    server_cpu_percent: float | None = None
    #: rows per model run in the window (modelplane: its batch-size histogram)
    batch_rows_mean: float | None = None
    first_error: str | None = None
    #: rounds this cell was measured in; its figures are their medians (combine)
    rounds: int = 1

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.model, self.target, self.protocol, self.batching, self.concurrency)


@dataclass
class _Samples:
    """Start and end times of completed requests, filled by the callers."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def record(self, start: float, end: float) -> None:
        self.starts.append(start)
        self.ends.append(end)

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


def summarise(cell: Cell, samples: _Samples, window: tuple[float, float]) -> Cell:
    """Throughput: requests that finished in the window; latency: those wholly in it."""
    import numpy as np

    begin, end = window
    starts = np.asarray(samples.starts)
    ends = np.asarray(samples.ends)
    finished = int(np.count_nonzero((ends >= begin) & (ends <= end)))
    inside = (starts >= begin) & (ends <= end)
    latencies_ms = (ends[inside] - starts[inside]) * 1000.0
    cell.requests = finished
    cell.errors = samples.errors
    cell.first_error = samples.first_error
    cell.seconds = end - begin
    cell.throughput_rps = finished / cell.seconds if cell.seconds > 0 else 0.0
    if latencies_ms.size:
        p50, p99 = np.percentile(latencies_ms, [50, 99])
        cell.p50_ms, cell.p99_ms = float(p50), float(p99)
        cell.mean_ms = float(latencies_ms.mean())
    return cell


#: figures of a cell that are the median of its rounds
MEDIAN_FIELDS = (
    "throughput_rps", "p50_ms", "p99_ms", "mean_ms", "server_cpu_us", "client_cpu_us",
    "server_cpu_percent", "batch_rows_mean",
)  # fmt: skip


def combine(rounds: list[Cell]) -> Cell:
    """One cell from its rounds: the median of each figure, the sum of requests and errors.

    A median, not a mean: a round that a neighbour's burst of work slowed is
    an outlier to drop, not a sample to average in.
    """
    import statistics

    cell = replace(rounds[0], rounds=len(rounds))
    for name in MEDIAN_FIELDS:
        values = [getattr(c, name) for c in rounds if getattr(c, name) is not None]
        setattr(cell, name, statistics.median(values) if values else None)
    cell.requests = sum(c.requests for c in rounds)
    cell.errors = sum(c.errors for c in rounds)
    cell.seconds = sum(c.seconds for c in rounds)
    cell.first_error = next((c.first_error for c in rounds if c.first_error), None)
    return cell


def window_after(warmup: float, duration: float) -> tuple[float, float]:
    begin = time.perf_counter() + warmup
    return begin, begin + duration


def measure_raw(
    run: Callable[[dict[str, np.ndarray]], Any],
    inputs: list[dict[str, np.ndarray]],
    cell: Cell,
    warmup: float,
    duration: float,
) -> Cell:
    """C threads, each calling the runtime in a closed loop (both runtimes release the GIL)."""
    for request in inputs[:8]:  # first runs allocate; no one should time those
        run(request)
    samples = _Samples()
    lock = threading.Lock()
    window = window_after(warmup, duration)

    def caller(offset: int) -> None:
        local: list[tuple[float, float]] = []
        i = offset
        while True:
            start = time.perf_counter()
            if start >= window[1]:
                break
            run(inputs[i % len(inputs)])
            local.append((start, time.perf_counter()))
            i += 1
        with lock:
            for s, e in local:
                samples.record(s, e)

    threads = [
        threading.Thread(target=caller, args=(n * 7,), daemon=True) for n in range(cell.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        # Bounded: each caller stops at the window's end plus one run.
        t.join(window[1] - time.perf_counter() + REQUEST_TIMEOUT_S)
    return summarise(cell, samples, window)


#: reads counters (of the server, of this process) at the window's ends
Sampler = Callable[[], dict[str, float]]


def cpu_sampler(server_pid: int) -> Sampler:
    """CPU seconds of the server process and of this process (the load generator)."""
    import psutil

    server = psutil.Process(server_pid)

    def sample() -> dict[str, float]:
        times = server.cpu_times()
        return {"server_cpu_s": times.user + times.system, "client_cpu_s": time.process_time()}

    return sample


async def sample_window(
    window: tuple[float, float], sampler: Sampler
) -> tuple[tuple[float, float], dict[str, float]]:
    """How much each counter of `sampler` grew, and between which two instants.

    The samples are due at the window's ends, but a loaded machine may take
    them late; figures are taken over the instants they were really taken.
    """

    def timed() -> tuple[float, dict[str, float]]:
        return time.perf_counter(), sampler()

    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    began, start = await asyncio.to_thread(timed)
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    ended, end = await asyncio.to_thread(timed)
    return (began, ended), {k: end[k] - start.get(k, 0.0) for k in end}


async def drive(
    call: Callable[[int], Awaitable[Any]],
    cell: Cell,
    warmup: float,
    duration: float,
    sampler: Sampler | None = None,
) -> Cell:
    samples = _Samples()
    # Check the path works before loading it: one failure here says why at once.
    await call(0)
    window = window_after(warmup, duration)
    counters = asyncio.create_task(sample_window(window, sampler)) if sampler else None

    async def caller(offset: int) -> None:
        i = offset
        while True:
            start = time.perf_counter()
            if start >= window[1]:
                return
            try:
                await call(i)
            except Exception as exc:
                samples.fail(exc)
                if samples.errors > 100:  # the server is not answering; end the cell
                    return
            else:
                samples.record(start, time.perf_counter())
            i += 1

    await asyncio.gather(*(caller(n * 7) for n in range(cell.concurrency)))
    cell = summarise(cell, samples, window)
    if counters is not None:
        (began, ended), grown = await counters
        done = sum(1 for e in samples.ends if began <= e <= ended)
        if done and "server_cpu_s" in grown:
            cell.server_cpu_us = grown["server_cpu_s"] / done * 1e6
            cell.client_cpu_us = grown["client_cpu_s"] / done * 1e6
        if ended > began and "server_cpu_s" in grown:
            cell.server_cpu_percent = grown["server_cpu_s"] / (ended - began) * 100
        if grown.get("batches"):
            cell.batch_rows_mean = grown["batch_rows"] / grown["batches"]
    return cell
