"""One served model: the request path every predictor shares.

decode (protocol) -> validate -> batch -> run (the runtime) -> encode (protocol).
Only the runtime differs between ONNX and Torch; this class is a kserve.Model,
so it also runs under KServe's own ModelServer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, TypeVar

import kserve
import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from predictors import metrics
from predictors.batching import DynamicBatcher
from predictors.errors import InvalidInput, ModelNotReady
from predictors.metadata import NUMPY_TO_V2, BatchingConfig, ModelMetadata
from predictors.model_store import StoredModel, verify
from predictors.protocol.tensors import InferenceRequest, RequestTensor
from predictors.runtimes import Runtime, RuntimeOptions, available_cpus, load_runtime
from predictors.validation import validate

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelState:
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    UNLOADED = "UNLOADED"


class ModelplaneModel(kserve.Model):
    def __init__(
        self,
        stored: StoredModel,
        options: RuntimeOptions | None = None,
        name: str | None = None,
        batching: BatchingConfig | None = None,
    ) -> None:
        super().__init__(name or stored.name)
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
        self._executor: ThreadPoolExecutor | None = None
        self._run_slots = threading.BoundedSemaphore(1)
        metrics.MODEL_READY.labels(self.name, self.version).set(0)
        self.series = metrics.ModelSeries(self.name, self.version)

    # -- loading -----------------------------------------------------------

    def load(self) -> bool:
        """Verify checksums, load, warm up. Never raises: a bad model reports why."""
        start = time.perf_counter()
        try:
            meta = self.stored.metadata()
            problems = verify(self.stored.path, meta)
            if problems:
                raise RuntimeError("; ".join(problems))
            runtime = load_runtime(self.stored.path, meta, self.options)
            self.meta, self.runtime = meta, runtime
            self.batching = self._choose_batching(meta)
            # Warm-up: the first run allocates memory and picks kernels; a
            # client should not pay for that, and readiness should prove it works.
            runtime.run(self._warmup_inputs(meta))
        except Exception as exc:
            self.state, self.error, self.ready = ModelState.FAILED, str(exc), False
            log.error("model %s version %s failed to load: %s", self.name, self.version, exc)
            return False
        finally:
            metrics.MODEL_LOAD_SECONDS.labels(self.name, self.version).set(
                time.perf_counter() - start
            )
        # With batching, one batch runs at a time; without, as many runs as
        # CPUs, whether they come from the executor (HTTP) or gRPC threads.
        workers = 1 if self.batching.enabled else available_cpus()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"run-{self.name}")
        self._run_slots = threading.BoundedSemaphore(workers)
        if self.batching.enabled:
            self._batcher = DynamicBatcher(
                self._run_batch,
                self.batching,
                self._executor,
                self.series.stage["queue"].observe,
            )
        self.state, self.error, self.ready = ModelState.READY, None, True
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
        return {
            t.name: np.zeros([1 if d == -1 else d for d in t.shape], dtype=t.dtype)
            for t in meta.inputs
        }

    def stop(self) -> None:
        metrics.MODEL_READY.labels(self.name, self.version).set(0)
        self.ready = False
        self.state = ModelState.UNLOADED
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def close(self) -> None:
        self.stop()

    # -- the request path --------------------------------------------------
    #
    # Two entry points share every step but the wait for the run: gRPC
    # handlers are threads and may run the model in place; the event loop
    # (HTTP, KServe's DataPlane) awaits a run in another thread.

    def handle_in_thread(
        self,
        decode: Callable[[], InferenceRequest],
        encode: Callable[[InferenceRequest, dict[str, np.ndarray]], T],
    ) -> T:
        """Run one request from a worker thread (never the event loop)."""
        request, inputs, rows = self._decode(decode)
        with self.series.predict.time():
            if self._batcher is not None:
                outputs = self._batcher.infer(inputs, rows)
            else:
                with self._run_slots:
                    outputs = self._run_batch(inputs, rows)
        return self._encode(request, outputs, encode)

    async def handle(
        self,
        decode: Callable[[], InferenceRequest],
        encode: Callable[[InferenceRequest, dict[str, np.ndarray]], T],
    ) -> T:
        """Run one request from the event loop; the model runs in a thread."""
        request, inputs, rows = self._decode(decode)
        with self.series.predict.time():
            if self._batcher is not None:
                outputs = await self._batcher.infer_async(inputs, rows)
            else:
                loop = asyncio.get_running_loop()
                outputs = await loop.run_in_executor(self._executor, self._run_batch, inputs, rows)
        return self._encode(request, outputs, encode)

    def _decode(
        self, decode: Callable[[], InferenceRequest]
    ) -> tuple[InferenceRequest, dict[str, np.ndarray], int]:
        if not self.ready or self.meta is None:
            raise ModelNotReady(self.name, self.error or f"state {self.state}")
        with self.series.stage["decode"].time():
            request = decode()
            inputs, rows = validate(request, self.meta)
        return request, inputs, rows

    def _encode(
        self,
        request: InferenceRequest,
        outputs: dict[str, np.ndarray],
        encode: Callable[[InferenceRequest, dict[str, np.ndarray]], T],
    ) -> T:
        if request.outputs:
            outputs = {o.name: outputs[o.name] for o in request.outputs}
        with self.series.stage["encode"].time():
            return encode(request, outputs)

    def _run_batch(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        assert self.runtime is not None
        self.series.batch_size.observe(rows)
        with self.series.stage["inference"].time():
            return self.runtime.run(inputs)

    # -- KServe SDK entry point ---------------------------------------------

    async def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        """Serve an InferRequest from KServe's DataPlane through the same path."""
        if not isinstance(payload, InferRequest):
            raise InvalidInput("modelplane models speak the V2 protocol only")

        def decode() -> InferenceRequest:
            tensors = [
                RequestTensor(i.name, i.datatype.upper(), list(i.shape), i.as_numpy().reshape(-1))
                for i in payload.inputs
            ]
            return InferenceRequest(id=payload.id or "", inputs=tensors)

        def encode(request: InferenceRequest, outputs: dict[str, np.ndarray]) -> InferResponse:
            infer_outputs = []
            for name, array in outputs.items():
                out = InferOutput(name, list(array.shape), NUMPY_TO_V2[array.dtype])
                out.set_data_from_numpy(array, binary_data=False)
                infer_outputs.append(out)
            return InferResponse(
                response_id=request.id,
                model_name=self.name,
                model_version=self.version,
                infer_outputs=infer_outputs,
            )

        return await self.handle(decode, encode)

    def get_input_types(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.meta.inputs] if self.meta else []

    def get_output_types(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.meta.outputs] if self.meta else []

    # -- what clients see ---------------------------------------------------

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """V2 model metadata, plus modelplane's state, batching and provenance."""
        meta = self.meta
        doc: dict[str, Any] = {
            "name": self.name,
            "versions": versions,
            "platform": meta.platform if meta else "",
            "inputs": self.get_input_types(),
            "outputs": self.get_output_types(),
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
                }
            )
        return doc
