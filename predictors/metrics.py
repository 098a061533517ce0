"""Prometheus metrics of the predictors (names and labels: docs/contract.md).

One process serves a pod (see README, "Metrics"), so the default registry
is the whole truth and needs no multiprocess collector.

Triton's statistics extension (predictors.serving.statistics) reports the
same measurements per model version, taken in the same calls that feed the
Prometheus series (`Stage.observe`, `ModelSeries.batch`, `RequestRecord.finish`)
and kept per (name, version) for the life of the process, as the series are,
across an unload and reload. They follow Triton's meaning, which
perf_analyzer relies on: the compute counts are successful requests, all
three raised together when a request succeeds (so a snapshot never sees them
differ), and a batch's run time counts once for every request in it; the
durations are the Prometheus stage sums (requests that then failed included).
Per run, `batches` are exactly the `inference` stage and `modelplane_batch_size`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from predictors.drift import SLOT_SECONDS, WINDOW_SLOTS
from predictors.model_statistics import ModelStatistics, Tally, statistics_of
from predictors.runtimes.cuda import cuda_devices

if TYPE_CHECKING:
    from predictors.drift import DriftMonitor

# Latencies of a small model on a CPU start well under a millisecond.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "modelplane_requests",
    "Inference requests, by outcome (status is the HTTP code; gRPC codes are mapped).",
    ["model_name", "model_version", "protocol", "status"],
)
REQUEST_DURATION = Histogram(
    "modelplane_request_duration_seconds",
    "Time from receiving an inference request to having its response encoded.",
    ["model_name", "model_version", "protocol"],
    buckets=LATENCY_BUCKETS,
)
STAGE_DURATION = Histogram(
    "modelplane_request_stage_seconds",
    "Time spent per request in each stage: queue, decode, inference, encode.",
    ["model_name", "model_version", "stage"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "modelplane_batch_size",
    "Rows per batch run by the model (after dynamic batching).",
    ["model_name", "model_version"],
    buckets=BATCH_BUCKETS,
)
INFLIGHT = Gauge(
    "modelplane_inflight_requests",
    "Inference requests being handled now.",
    ["model_name", "protocol"],
)
SHED = Counter(
    "modelplane_shed_requests",
    "Inference requests refused at once because the model's queue was full (503, "
    "RESOURCE_EXHAUSTED).",
    ["model_name", "model_version", "protocol"],
)
EXPIRED = Counter(
    "modelplane_expired_requests",
    "Inference requests whose client had gone or whose deadline had passed: dropped "
    "before running (stage=queued) or run for nobody (stage=completed).",
    ["model_name", "model_version", "protocol", "stage"],
)
QUEUE = Gauge(
    "modelplane_queued_requests",
    "Inference requests a model holds now, queued or running (its admission count).",
    ["model_name", "model_version"],
)
MODEL_READY = Gauge(
    "modelplane_model_ready",
    "1 when the model is loaded, verified and warmed up, else 0.",
    ["model_name", "model_version"],
)
MODEL_LOAD_SECONDS = Gauge(
    "modelplane_model_load_seconds",
    "Seconds the last load of the model took (checksum, load, warm-up).",
    ["model_name", "model_version"],
)
GPU_MEMORY_USED = Gauge(
    "modelplane_gpu_memory_used_bytes", "GPU memory in use on the device.", ["device"]
)
GPU_MEMORY_TOTAL = Gauge(
    "modelplane_gpu_memory_total_bytes", "GPU memory on the device.", ["device"]
)


class DriftCollector(Collector):
    """Input drift series, computed from each model's window when /metrics is scraped.

    Nothing is set per request: a served model's DriftMonitor counts its
    batches (predictors.drift) and a scrape reads the monitors. A model without
    a reference profile registers none, so it exports nothing.
    """

    def __init__(self) -> None:
        self._monitors: dict[tuple[str, str], DriftMonitor] = {}
        self._lock = threading.Lock()

    def register(self, model_name: str, version: str, monitor: DriftMonitor) -> None:
        with self._lock:
            self._monitors[(model_name, version)] = monitor

    def unregister(self, model_name: str, version: str, monitor: DriftMonitor) -> None:
        """Forget `monitor`, unless a later load of the same version replaced it."""
        with self._lock:
            if self._monitors.get((model_name, version)) is monitor:
                del self._monitors[(model_name, version)]

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from _drift_families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        psi, rows = _drift_families()
        with self._lock:
            monitors = list(self._monitors.items())
        for (model_name, version), monitor in monitors:
            for window in monitor.snapshot():
                rows.add_metric([model_name, version, window.input], window.rows)
                for feature, score in window.psi.items():
                    psi.add_metric([model_name, version, window.input, feature], score)
        yield from (psi, rows)


def _drift_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    window = f"the last {SLOT_SECONDS * WINDOW_SLOTS / 60:g} minutes"
    return GaugeMetricFamily(
        "modelplane_input_drift_psi",
        f"Population stability index of an input feature: live inputs of {window} against "
        "the training data's bins (0.25 and above: a significant shift).",
        labels=["model_name", "model_version", "input", "feature"],
    ), GaugeMetricFamily(
        "modelplane_input_drift_window_rows",
        f"Rows of an input counted into its drift window ({window}).",
        labels=["model_name", "model_version", "input"],
    )


DRIFT = DriftCollector()
REGISTRY.register(DRIFT)


STAGES = ("queue", "decode", "inference", "encode")
PROTOCOLS = ("http", "grpc")


class Stage:
    """A stage's histogram child and its statistics, observed together."""

    def __init__(self, child: Any, statistics: ModelStatistics, name: str) -> None:
        self._child = child
        self._statistics = statistics
        self._name = name

    def observe(self, seconds: float) -> None:
        self._child.observe(seconds)
        statistics = self._statistics
        with statistics.lock:
            if self._name == "queue":
                statistics.queue.add(seconds)
                # The batcher reports each request's wait in the thread that
                # then runs their batch: ModelSeries.batch counts them there.
                _batch_requests.count = getattr(_batch_requests, "count", 0) + 1
            elif self._name != "inference":
                statistics.compute_seconds[self._name] += seconds


#: requests whose queue wait this thread reported since its last model run
_batch_requests = threading.local()


class ModelSeries:
    """One model version's labelled series, looked up once rather than per request.

    Creating them also starts each series at zero, so rates and dashboards see
    a model before its first request.
    """

    def __init__(self, model_name: str, version: str) -> None:
        self.statistics = statistics_of(model_name, version)
        self.stage = {
            name: Stage(STAGE_DURATION.labels(model_name, version, name), self.statistics, name)
            for name in STAGES
        }
        self.batch_size = BATCH_SIZE.labels(model_name, version)
        self.inflight = {p: INFLIGHT.labels(model_name, p) for p in PROTOCOLS}
        self.duration = {p: REQUEST_DURATION.labels(model_name, version, p) for p in PROTOCOLS}
        self.succeeded = {p: REQUESTS.labels(model_name, version, p, "200") for p in PROTOCOLS}
        self.shed = {p: SHED.labels(model_name, version, p) for p in PROTOCOLS}
        self.expired = {
            (p, stage): EXPIRED.labels(model_name, version, p, stage)
            for p in PROTOCOLS
            for stage in ("queued", "completed")
        }
        self.queued = QUEUE.labels(model_name, version)
        self.model_name = model_name
        # Created on first use (kserve_predict_histogram says why).
        self._kserve_predict: Any = None

    def ran(self, rows: int, seconds: float | None) -> None:
        """One model run of `rows` rows took `seconds`; None: it raised, and is not counted."""
        # Without batching no queue is reported: the run is one request's.
        requests = max(1, getattr(_batch_requests, "count", 0))
        _batch_requests.count = 0
        if seconds is None:
            return
        self.batch_size.observe(rows)
        self.stage["inference"].observe(seconds)
        statistics = self.statistics
        with statistics.lock:
            statistics.rows += rows
            statistics.runs += 1
            statistics.batches.setdefault(rows, Tally()).add(seconds)
            statistics.compute_seconds["inference"] += seconds * requests

    def kserve_predict(self) -> Any:
        """KServe's request_predict_seconds child for this model, looked up once."""
        if self._kserve_predict is None:
            self._kserve_predict = kserve_predict_histogram().labels(model_name=self.model_name)
        return self._kserve_predict


_kserve_predict: Histogram | None = None


def kserve_predict_histogram() -> Histogram:
    """KServe's `request_predict_seconds` (name, help, label, default buckets as its SDK's).

    modelplane's server records it so KServe's own dashboards (grafana 17969)
    work. Under KServe's ModelServer (predictors.serving.kserve_adapter) KServe
    records it itself, and prometheus_client refuses a second histogram of one
    name, so it is created on first use by our server only, or taken from
    kserve.metrics when that is loaded.
    """
    global _kserve_predict
    if _kserve_predict is None:
        kserve_metrics = sys.modules.get("kserve.metrics")
        _kserve_predict = (
            kserve_metrics.PREDICT_HIST_TIME
            if kserve_metrics is not None
            else Histogram("request_predict_seconds", "predict request latency", ["model_name"])
        )
    return _kserve_predict


def refresh_gpu_memory() -> None:
    """Read GPU memory just before a scrape; a no-op without a CUDA device.

    The driver is asked first (predictors.runtimes.cuda, cached): without a
    GPU, torch is never imported here. It used to be at the first scrape,
    taking seconds on the event loop, during which nothing else was answered,
    and 200 MiB for a server of ONNX models.
    """
    if cuda_devices()[0] == 0:
        return
    import torch

    if not torch.cuda.is_available():
        return
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        GPU_MEMORY_USED.labels(f"cuda:{index}").set(total - free)
        GPU_MEMORY_TOTAL.labels(f"cuda:{index}").set(total)


class RequestRecord:
    """Outcome of one request; the protocol layer sets model and status."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        # A name that is not served is not a label value: random names
        # would grow the series without bound.
        self.model_name = "__unknown__"
        self.model_version = ""
        self.status = "200"
        self._start = time.perf_counter()
        self._series: ModelSeries | None = None
        self._inflight: Gauge | None = None
        self._duration: Histogram | None = None

    def served_by(self, model_name: str, model_version: str, series: ModelSeries) -> None:
        self.model_name, self.model_version = model_name, model_version
        self._series = series
        self._inflight = series.inflight[self.protocol]
        self._duration = series.duration[self.protocol]
        self._inflight.inc()

    def finish(self) -> None:
        seconds = time.perf_counter() - self._start
        if self._series is not None and self.status == "200":
            self._series.succeeded[self.protocol].inc()
        else:
            REQUESTS.labels(self.model_name, self.model_version, self.protocol, self.status).inc()
        if self._inflight is not None and self._duration is not None:
            self._inflight.dec()
            self._duration.observe(seconds)
        if self._series is not None:
            statistics = self._series.statistics
            with statistics.lock:
                if self.status == "200":
                    statistics.success.add(seconds)
                    statistics.computed += 1
                else:
                    statistics.fail.add(seconds)
                statistics.last_inference_ms = int(time.time() * 1000)
