"""What Triton's statistics extension reports per model version, counted in process.

predictors.metrics counts these in the same calls as the Prometheus series,
so `GET /v2/models/{m}/stats` and `/metrics` always agree; the extension
(predictors.serving.statistics) only formats a snapshot.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    """A count and a total time, as Triton's StatisticDuration."""

    count: int = 0
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": round(self.seconds * 1e9)}


@dataclass
class ModelStatistics:
    """One model version's activity since the process started (Triton's ModelStatistics)."""

    success: Tally = field(default_factory=Tally)
    fail: Tally = field(default_factory=Tally)
    #: requests through the batcher's queue, and their waits
    queue: Tally = field(default_factory=Tally)
    #: successful requests: the count of compute_input, compute_infer and compute_output
    computed: int = 0
    #: seconds per stage: decoding, the runs each request waited on, encoding
    compute_seconds: dict[str, float] = field(
        default_factory=lambda: {"decode": 0.0, "inference": 0.0, "encode": 0.0}
    )
    #: batch size -> its model runs
    batches: dict[int, Tally] = field(default_factory=dict)
    #: rows run by the model (Triton's inference_count), and runs (execution_count)
    rows: int = 0
    runs: int = 0
    #: ms since the epoch of the last request, 0 before the first
    last_inference_ms: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "last_inference": self.last_inference_ms,
                "inference_count": self.rows,
                "execution_count": self.runs,
                "success": self.success.to_dict(),
                "fail": self.fail.to_dict(),
                "queue": self.queue.to_dict(),
                "compute": {
                    stage: Tally(self.computed, seconds).to_dict()
                    for stage, seconds in self.compute_seconds.items()
                },
                "batches": {rows: tally.to_dict() for rows, tally in sorted(self.batches.items())},
            }


_statistics: dict[tuple[str, str], ModelStatistics] = {}
_statistics_lock = threading.Lock()


def statistics_of(model_name: str, version: str) -> ModelStatistics:
    """The statistics of a model version (created at zero on first use, like a series)."""
    with _statistics_lock:
        return _statistics.setdefault((model_name, version), ModelStatistics())
