"""Dynamic batching under concurrency: every caller gets exactly its own rows."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc.aio as grpcaio
import tritonclient.http.aio as httpaio

from predictors.batching import DynamicBatcher
from predictors.metadata import BatchingConfig, BatchingMeasurement, ModelMetadata
from tests.support import MODEL_STORE, Server, start_server

CALLERS = 48


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A queue delay makes batches form reliably even on a fast machine.
    server = start_server(
        MODEL_STORE,
        tmp_path_factory.mktemp("batching"),
        "--models",
        "digits-onnx,digits-torch",
        "--batching",
        "on",
        "--max_batch_size",
        "16",
        "--max_queue_delay_ms",
        "20",
    )
    try:
        yield server
    finally:
        server.stop()


def reference(x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(MODEL_STORE / "digits-onnx" / "1" / "model.onnx"))
    return session.run(None, {"image": x})[0]


def caller_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    # Distinct inputs with distinct row counts, so a mix-up cannot go unseen.
    return [rng.random((1 + i % 3, 1, 8, 8), dtype=np.float32) for i in range(CALLERS)]


async def call_grpc(url: str, model: str, xs: list[np.ndarray]) -> list[np.ndarray]:
    client = grpcaio.InferenceServerClient(url)
    try:

        async def one(x: np.ndarray) -> np.ndarray:
            inp = grpcaio.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            return (await client.infer(model, [inp])).as_numpy("probabilities")

        return await asyncio.gather(*(one(x) for x in xs))
    finally:
        await client.close()


async def call_http(url: str, model: str, xs: list[np.ndarray]) -> list[np.ndarray]:
    client = httpaio.InferenceServerClient(url)
    try:

        async def one(x: np.ndarray) -> np.ndarray:
            inp = httpaio.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            return (await client.infer(model, [inp])).as_numpy("probabilities")

        return await asyncio.gather(*(one(x) for x in xs))
    finally:
        await client.close()


def batch_stats(server: Server, model: str) -> tuple[float, float]:
    # Generous: a server's first scrape may load torch (metrics.refresh_gpu_memory).
    text = httpx.get(f"http://{server.http_url}/metrics", timeout=60).text
    labels = f'model_name="{model}",model_version="1"'
    total = float(re.search(rf"modelplane_batch_size_sum{{{labels}}} (\S+)", text).group(1))
    count = float(re.search(rf"modelplane_batch_size_count{{{labels}}} (\S+)", text).group(1))
    return total, count


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("model", ["digits-onnx", "digits-torch"])
def test_concurrent_callers_get_their_own_rows(
    batching_server: Server, protocol: str, model: str
) -> None:
    xs = caller_inputs()
    rows_before, batches_before = batch_stats(batching_server, model)
    if protocol == "grpc":
        results = asyncio.run(call_grpc(batching_server.grpc_url, model, xs))
    else:
        results = asyncio.run(call_http(batching_server.http_url, model, xs))
    for x, got in zip(xs, results, strict=True):
        assert got.shape == (len(x), 10)
        np.testing.assert_allclose(got, reference(x), atol=1e-4)
    rows_after, batches_after = batch_stats(batching_server, model)
    rows = rows_after - rows_before
    batches = batches_after - batches_before
    assert rows == sum(len(x) for x in xs)
    # Requests really were merged: fewer model runs than requests.
    assert batches < CALLERS


def test_batching_settings_are_in_metadata(batching_server: Server) -> None:
    meta = httpx.get(f"http://{batching_server.http_url}/v2/models/digits-onnx").json()
    assert meta["parameters"]["batching"] == {
        "enabled": True,
        "max_rows": 16,
        "max_queue_delay_ms": 20.0,
        # Chosen on the command line, not measured by `modelplane bench`.
        "measured": None,
    }


def test_metadata_that_measured_no_gain_turns_batching_off(tmp_path: Path) -> None:
    """`--batching model` (the default) follows metadata.json; a model whose recorded
    measurement said batching does not pay is served without it."""
    store = tmp_path / "store"
    shutil.copytree(MODEL_STORE / "digits-onnx", store / "digits-onnx")
    version = store / "digits-onnx" / "1"
    meta = ModelMetadata.read(version)
    measured = BatchingMeasurement(speedup=0.93, concurrency=8, cpus=2)
    meta.batching = BatchingConfig(enabled=False, max_rows=16, measured=measured)
    meta.write(version)
    assert ModelMetadata.read(version).batching == meta.batching  # the file round-trips
    server = start_server(store, tmp_path, "--max_queue_delay_ms", "50")
    try:
        doc = httpx.get(f"http://{server.http_url}/v2/models/digits-onnx").json()
        assert doc["parameters"]["batching"] == {
            "enabled": False,
            "max_rows": 16,
            "max_queue_delay_ms": 0.0,
            "measured": {
                "speedup": 0.93,
                "concurrency": 8,
                "cpus": 2,
                "protocols": ["grpc", "http"],
                "measured_by": "modelplane bench",
            },
        }
        xs = caller_inputs()[:12]
        results = asyncio.run(call_grpc(server.grpc_url, "digits-onnx", xs))
        for x, got in zip(xs, results, strict=True):
            np.testing.assert_allclose(got, reference(x), atol=1e-4)
        rows, runs = batch_stats(server, "digits-onnx")
        # One run per request: nothing was merged, whatever the queue delay flag says.
        assert (rows, runs) == (sum(len(x) for x in xs), len(xs))
    finally:
        server.stop()


def test_metadata_without_a_measurement_still_reads(tmp_path: Path) -> None:
    """Stores written before `measured` existed (the bundled one among them) keep working."""
    meta = ModelMetadata.read(MODEL_STORE / "digits-onnx" / "1")
    assert meta.batching.measured is None
    raw = meta.to_dict()
    raw["batching"] = {"enabled": True, "max_batch_size": 8}  # the oldest spelling
    assert ModelMetadata.from_dict(raw).batching == BatchingConfig(enabled=True, max_rows=8)


def test_grpc_threads_and_http_callers_share_batches(batching_server: Server) -> None:
    """gRPC handlers lead batches in their own threads, HTTP callers queue from
    the event loop: mixed, every caller still gets exactly its own rows."""
    xs = caller_inputs()

    async def both() -> tuple[list[np.ndarray], list[np.ndarray]]:
        grpc_results, http_results = await asyncio.gather(
            call_grpc(batching_server.grpc_url, "digits-onnx", xs[::2]),
            call_http(batching_server.http_url, "digits-onnx", xs[1::2]),
        )
        return grpc_results, http_results

    grpc_results, http_results = asyncio.run(both())
    for x, got in zip(xs[::2] + xs[1::2], grpc_results + http_results, strict=True):
        np.testing.assert_allclose(got, reference(x), atol=1e-4)


# -- the batcher on its own, with a plain function as the model ----------------


def run_in_threads(batcher: DynamicBatcher, inputs: list[np.ndarray]) -> list[object]:
    """Call the batcher from one thread per input, all at once; results or errors."""
    results: list[object] = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def call(i: int) -> None:
        start.wait(timeout=10)
        try:
            results[i] = batcher.infer({"x": inputs[i]}, len(inputs[i]))["y"]
        except Exception as exc:
            results[i] = exc

    with ThreadPoolExecutor(len(inputs)) as pool:
        list(pool.map(call, range(len(inputs))))
    return results


def test_requests_with_different_row_shapes_are_not_stacked() -> None:
    seen: list[tuple[int, ...]] = []

    def run(inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        seen.append(inputs["x"].shape)
        return {"y": inputs["x"].sum(axis=1)}

    with ThreadPoolExecutor(1) as executor:
        batcher = DynamicBatcher(
            run, BatchingConfig(True, max_rows=64, max_queue_delay_ms=200), executor
        )
        # A model with a dynamic second axis (say, sequence length): rows of
        # width 3 and of width 5 cannot go into one array.
        rng = np.random.default_rng(0)
        xs = [rng.random((1 + i % 2, 3 if i % 3 else 5)) for i in range(24)]
        results = run_in_threads(batcher, xs)
    for x, got in zip(xs, results, strict=True):
        np.testing.assert_allclose(got, x.sum(axis=1))
    assert sum(shape[0] for shape in seen) == sum(len(x) for x in xs)
    assert len(seen) < len(xs)  # batches did form


def test_a_failing_batch_fails_its_callers_and_the_next_batch_runs() -> None:
    def run(inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2}

    with ThreadPoolExecutor(1) as executor:
        batcher = DynamicBatcher(
            # The leader waits (up to 10 s) until all four rows are queued.
            run,
            BatchingConfig(True, max_rows=4, max_queue_delay_ms=10_000),
            executor,
        )
        failed = run_in_threads(batcher, [np.full((1, 2), -1.0)] + [np.ones((1, 2))] * 3)
        assert all(isinstance(r, ValueError) for r in failed)  # one batch, one error
        ok = run_in_threads(batcher, [np.full((1, 2), float(i)) for i in range(4)])
    for i, got in enumerate(ok):
        np.testing.assert_array_equal(got, np.full((1, 2), 2.0 * i))


def test_grpc_requests_waiting_for_a_batch_hold_no_handler_slot(tmp_path: Path) -> None:
    """`--max_threads` bounds gRPC requests being worked on, not those waiting for their
    batch (predictors.serving.streaming.HandlerSlots.idle): 12 concurrent callers on 2
    threads still merge into batches of more than 2, as HTTP callers do. Before, each
    waiting request held its slot, so gRPC's share of any batch was --max_threads."""
    server = start_server(
        MODEL_STORE, tmp_path, "--models", "digits-onnx", "--batching", "on",
        "--max_batch_size", "16", "--max_queue_delay_ms", "50", "--max_threads", "2",
    )  # fmt: skip
    try:
        rng = np.random.default_rng(7)
        xs = [rng.random((1, 1, 8, 8), dtype=np.float32) for _ in range(12)]
        results = asyncio.run(call_grpc(server.grpc_url, "digits-onnx", xs))
        for x, got in zip(xs, results, strict=True):
            np.testing.assert_allclose(got, reference(x), atol=1e-4)
        text = httpx.get(f"http://{server.http_url}/metrics", timeout=60).text
        labels = 'model_name="digits-onnx",model_version="1"'
        buckets = {
            re.search(r'le="([^"]+)"', series).group(1): value
            for series, value in re.findall(r"modelplane_batch_size_bucket\{([^}]*)\} (\S+)", text)
            if all(label in series for label in labels.split(","))
        }
        _, batches = batch_stats(server, "digits-onnx")
        # Warm-up aside, some batch held more than two requests: fewer batches than 6.
        assert float(buckets["2.0"]) < batches
        assert batches < len(xs) / 2
    finally:
        server.stop()


def test_a_request_that_cannot_make_its_deadline_is_shed_at_once() -> None:
    """predictors.admission: the queue ahead of it, at the rate the model finishes
    requests, would outlast its deadline; the place would only become wasted work."""
    from predictors.admission import RATE_WINDOW, Admission, AdmissionConfig
    from predictors.errors import Overloaded

    admission = Admission("m", AdmissionConfig(max_requests=100))
    # The model has been finishing a request every 10 ms.
    for _ in range(RATE_WINDOW):
        with admission.enter("grpc", 1):
            time.sleep(0.01)
    held = [admission.enter("grpc", 1) for _ in range(50)]  # 0.5 s of work queued
    for place in held:
        place.__enter__()
    try:
        with admission.enter("grpc", 1, remaining=2.0):
            pass  # 2 s is enough
        with (
            pytest.raises(Overloaded, match="would not run it before its deadline"),
            admission.enter("grpc", 1, remaining=0.1),
        ):
            pass
        with admission.enter("grpc", 1):  # no deadline: only the limit applies
            pass
    finally:
        for place in held:
            place.__exit__(None, None, None)
