"""One served model version: the request path every predictor shares.

decode (protocol) -> validate -> batch -> run (the runtime) -> encode (protocol).
Only the runtime differs between ONNX and Torch. The class knows nothing of
servers or transports: the serving layer (predictors.serving) resolves
requests to it, and predictors.serving.kserve_adapter wraps it as a
kserve.Model for KServe's own ModelServer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, TypeVar

import numpy as np

from predictors import metrics
from predictors.admission import Admission, AdmissionConfig, Caller
from predictors.batching import DynamicBatcher
from predictors.drift import NO_PROFILE, DriftMonitor
from predictors.errors import (
    ClientGone,
    DeadlineExceeded,
    InvalidInput,
    ModelFailed,
    ModelNotReady,
    Overloaded,
    ServingError,
    redact_paths,
)
from predictors.metadata import BatchingConfig, ModelMetadata
from predictors.model_store import StoredModel, verify
from predictors.protocol.tensors import InferenceRequest
from predictors.runtimes import Runtime, RuntimeOptions, load_runtime, parallel_runs
from predictors.validation import validate

log = logging.getLogger(__name__)
T = TypeVar("T")
Arrays = dict[str, np.ndarray]
#: a transport's decoder of the request it received, run in the request path
Decode = Callable[[], InferenceRequest]
#: a transport's encoder of the outputs into its response type
Encode = Callable[[InferenceRequest, Arrays], T]


class ModelState:
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    UNLOADED = "UNLOADED"


class ServedModel:
    def __init__(
        self,
        stored: StoredModel,
        options: RuntimeOptions | None = None,
        name: str | None = None,
        batching: BatchingConfig | None = None,
        admission: AdmissionConfig | None = None,
    ) -> None:
        self.name = name or stored.name
        self.ready = False
        self.stored = stored
        self.version = stored.version
        self.options = options or RuntimeOptions()
        self._batching_override = batching
        self.state = ModelState.LOADING
        self.error: str | None = None
        self.meta: ModelMetadata | None = None
        self.runtime: Runtime | None = None
        self.batching: BatchingConfig | None = None
        self._batcher: DynamicBatcher | None = None
        self.drift: DriftMonitor | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._run_slots = threading.BoundedSemaphore(1)
        metrics.MODEL_READY.labels(self.name, self.version).set(0)
        self.series = metrics.ModelSeries(self.name, self.version)
        self.admission = Admission(self.name, admission or AdmissionConfig())
        # Read at scrape time: nothing to count per request.
        self.series.queued.set_function(lambda: self.admission.held)

    # -- loading -----------------------------------------------------------

    def load(self) -> bool:
        """Verify checksums, load, warm up. Never raises: a bad model reports why."""
        start = time.perf_counter()
        try:
            meta = self.stored.read_metadata()
            if self.stored.bare_file is not None:
                # Nothing to verify: there are no recorded checksums.
                log.info(
                    "model %s version %s: no metadata.json, metadata derived from %s",
                    self.name,
                    self.version,
                    self.stored.bare_file.name,
                )
            problems = [] if self.stored.derived else verify(self.stored.path, meta)
            if problems:
                raise RuntimeError("; ".join(problems))
            runtime = load_runtime(self.stored.path, meta, self.options)
            self.meta, self.runtime = meta, runtime
            self.batching = self._choose_batching(meta)
            if meta.drift_profile is not None:
                self.drift = DriftMonitor(meta.drift_profile, meta.inputs)
            # Warm-up: the first run allocates memory and picks kernels; a
            # client should not pay for that, and readiness should prove it works.
            runtime.run(self._warmup_inputs(meta))
        except Exception as exc:
            # Clients see the reason (metadata, readiness), never the host's paths.
            self.state, self.error, self.ready = ModelState.FAILED, redact_paths(str(exc)), False
            log.error("model %s version %s failed to load: %s", self.name, self.version, exc)
            return False
        finally:
            metrics.MODEL_LOAD_SECONDS.labels(self.name, self.version).set(
                time.perf_counter() - start
            )
        # The compute policy (predictors.runtimes.parallel_runs): one batch at a
        # time with batching, else several runs at once, whether they come from
        # the executor (HTTP) or gRPC threads.
        workers = parallel_runs(self.options.parallel_runs, self.batching.enabled)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"run-{self.name}")
        self._run_slots = threading.BoundedSemaphore(workers)
        if self.batching.enabled:
            self._batcher = DynamicBatcher(
                self._run_batch,
                self.batching,
                self._executor,
                self.series.stage["queue"].observe,
                self._count_wasted,
            )
        self.state, self.error, self.ready = ModelState.READY, None, True
        if self.drift is not None:
            metrics.DRIFT.register(self.name, self.version, self.drift)
        metrics.MODEL_READY.labels(self.name, self.version).set(1)
        log.info(
            "model %s version %s ready on %s in %.2fs (batching %s)",
            self.name,
            self.version,
            runtime.device,
            time.perf_counter() - start,
            self.batching,
        )
        return True

    def _choose_batching(self, meta: ModelMetadata) -> BatchingConfig:
        config = self._batching_override or meta.batching
        # Rows can only be split back if every tensor has the batch axis first.
        if not all(t.batched for t in (*meta.inputs, *meta.outputs)):
            return BatchingConfig(enabled=False)
        return config

    @staticmethod
    def _warmup_inputs(meta: ModelMetadata) -> dict[str, np.ndarray]:
        # BYTES inputs reach runtimes as text (validation.validate): empty strings.
        return {
            t.name: np.full(
                [1 if d == -1 else d for d in t.shape], "" if t.dtype.kind == "O" else 0, t.dtype
            )
            for t in meta.inputs
        }

    def stop(self) -> None:
        metrics.MODEL_READY.labels(self.name, self.version).set(0)
        if self.drift is not None:
            metrics.DRIFT.unregister(self.name, self.version, self.drift)
        self.ready = False
        self.state = ModelState.UNLOADED
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # -- the request path --------------------------------------------------
    #
    # Two entry points share every step but the wait for the run: gRPC
    # handlers are threads and may run the model in place; the event loop
    # (HTTP, KServe's DataPlane) awaits a run in another thread.

    def handle_in_thread(self, decode: Decode, encode: Encode[T], caller: Caller) -> T:
        """Run one request from a worker thread (never the event loop), within `admit`.

        The caller took its place (`admit`) before it waited for a handler
        thread; `admit` also counts what is shed or expires meanwhile.
        """
        request, inputs, rows = self._admissible(decode, caller)
        outputs = self._run_here(inputs, rows, caller)
        return self._encode(request, outputs, encode)

    @contextmanager
    def admit(self, caller: Caller) -> Iterator[None]:
        """Take a place in the queue (one row) before decoding; shed and counted if full."""
        with self._accounted(caller), self.admission.enter(caller.protocol, 1, caller.remaining()):
            yield

    async def handle(
        self,
        decode: Decode,
        encode: Encode[T],
        caller: Caller | None = None,
        decode_in_thread: bool = False,
    ) -> T:
        """Run one request from the event loop; the model runs in a thread.

        decode_in_thread: a large body's decoding (JSON to numbers can take
        seconds) runs in a worker thread too, so the loop keeps answering
        health checks and other requests meanwhile.
        """
        caller = caller or Caller("http")
        with self._accounted(caller):
            if decode_in_thread:
                request, inputs, rows = await asyncio.to_thread(self._admissible, decode, caller)
            else:
                request, inputs, rows = self._admissible(decode, caller)
            with self.admission.enter(caller.protocol, rows, caller.remaining()):
                outputs = await self._run_elsewhere(inputs, rows, caller)
        return self._encode(request, outputs, encode)

    @contextmanager
    def _accounted(self, caller: Caller) -> Iterator[None]:
        """Count requests shed, and those their caller stopped waiting for before they ran."""
        try:
            yield
        except Overloaded:
            self.series.shed[caller.protocol].inc()
            raise
        except (DeadlineExceeded, ClientGone, asyncio.CancelledError):
            if not caller.started:
                self.series.expired[(caller.protocol, "queued")].inc()
            raise

    def refuse_if_full(self, protocol: str) -> None:
        """Shed before reading a body: a cheap look, no place is taken."""
        reason = self.admission.refuses(protocol)
        if reason is not None:
            self.series.shed[protocol].inc()
            raise Overloaded(f"{reason}: try again shortly")

    def _admissible(self, decode: Decode, caller: Caller) -> tuple[InferenceRequest, Arrays, int]:
        request, inputs, rows = self._decode(decode)
        caller.tighten(_timeout_us(request))
        caller.check(self.name)
        return request, inputs, rows

    def _run_here(self, inputs: Arrays, rows: int, caller: Caller) -> Arrays:
        if self._batcher is not None:
            return self._batcher.infer(inputs, rows, caller)
        # Most requests find a free slot: only one that waits gives its handler slot back.
        acquired = self._run_slots.acquire(blocking=False)
        if not acquired:
            with caller.idle():
                acquired = self._run_slots.acquire(timeout=caller.remaining())
        if not acquired:
            raise DeadlineExceeded(f"the deadline passed before model {self.name} could run it")
        try:
            return self._run_for(caller, inputs, rows)
        finally:
            self._run_slots.release()

    async def _run_elsewhere(self, inputs: Arrays, rows: int, caller: Caller) -> Arrays:
        if self._batcher is not None:
            return await self._batcher.infer_async(inputs, rows, caller)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_for, caller, inputs, rows)

    def _run_for(self, caller: Caller, inputs: Arrays, rows: int) -> Arrays:
        """Unbatched: run unless the caller's deadline passed or it left while queued."""
        caller.check(self.name)
        if not caller.alive():
            raise ClientGone("the client left before its request ran")
        caller.started = True
        outputs = self._run_batch(inputs, rows)
        if not caller.alive():
            self._count_wasted(caller)
        return outputs

    def _count_wasted(self, caller: Caller) -> None:
        self.series.expired[(caller.protocol, "completed")].inc()

    def _decode(self, decode: Decode) -> tuple[InferenceRequest, Arrays, int]:
        if not self.ready or self.meta is None:
            raise ModelNotReady(self.name, self.error or f"state {self.state}")
        # Timed by hand, as below: a generator context manager costs as much
        # as a small model's run, and the request path had ten.
        start = time.perf_counter()
        try:
            request = decode()
            inputs, rows = validate(request, self.meta)
        finally:
            self.series.stage["decode"].observe(time.perf_counter() - start)
        return request, inputs, rows

    def _encode(self, request: InferenceRequest, outputs: Arrays, encode: Encode[T]) -> T:
        if request.outputs:
            outputs = {o.name: outputs[o.name] for o in request.outputs}
        start = time.perf_counter()
        try:
            return encode(request, outputs)
        finally:
            self.series.stage["encode"].observe(time.perf_counter() - start)

    def _run_batch(self, inputs: Arrays, rows: int) -> Arrays:
        assert self.runtime is not None
        if self.drift is not None:
            # Here, in the thread that runs the model, never on the event loop.
            self.drift.count(inputs)
        start = time.perf_counter()
        try:
            outputs = self.runtime.run(inputs)
        except Exception as exc:
            self.series.ran(rows, None)
            if isinstance(exc, ServingError):
                raise
            # The runtime's text can be long and name host paths: it goes
            # to the log, whole; each caller of the batch gets one line.
            log.exception(
                "model %s version %s failed on a batch of %d rows", self.name, self.version, rows
            )
            raise ModelFailed(
                f"model {self.name} version {self.version} failed to run this request "
                f"({type(exc).__name__}); the server log has the details"
            ) from exc
        self.series.ran(rows, time.perf_counter() - start)
        return outputs

    # -- what clients see ---------------------------------------------------

    def input_specs(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.meta.inputs] if self.meta else []

    def output_specs(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.meta.outputs] if self.meta else []

    def v2_metadata(self, versions: list[str]) -> dict[str, Any]:
        """V2 model metadata, plus modelplane's state, batching and provenance."""
        meta = self.meta
        doc: dict[str, Any] = {
            "name": self.name,
            "versions": versions,
            "platform": meta.platform if meta else "",
            "inputs": self.input_specs(),
            "outputs": self.output_specs(),
            "parameters": {"version": self.version, "state": self.state},
        }
        if self.error:
            doc["parameters"]["error"] = self.error
        if meta is not None:
            doc["parameters"].update(
                {
                    "device": self.runtime.device if self.runtime else None,
                    "labels": meta.labels,
                    "max_batch_size": meta.max_batch_size,
                    "batching": asdict(self.batching) if self.batching else None,
                    "metrics": meta.metrics,
                    "framework_versions": meta.framework_versions,
                    "provenance": meta.provenance,
                    "drift": self.drift.describe() if self.drift else NO_PROFILE,
                }
            )
        return doc


def _timeout_us(request: InferenceRequest) -> int | None:
    """Triton's `timeout` request parameter: microseconds the client will wait."""
    value = request.parameters.get("timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(
            f"parameter 'timeout' must be a positive number of microseconds, got {value!r}"
        )
    return value
