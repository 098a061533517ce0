"""Admission control on a busy model: shed at once when the queue is full, drop what
expired before running it, and keep health checks and small requests out of the queue.

The model is busy for real (tests/predictors/slow_model.py: an ONNX loop of
matmuls), so the queue fills as it would in production.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as grpcaio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from predictors.cli import main as modelplane
from tests.predictors.slow_model import WIDTH, slow_onnx
from tests.support import MODEL_STORE, Server, start_server

QUEUE = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("store")
    source = slow_onnx(store.parent / "slow.onnx", trips=1500)  # ~0.1 s a run here
    assert modelplane(["store", "add", "--store", str(store), "--name", "slow", str(source)]) == 0
    server = start_server(
        store, tmp_path_factory.mktemp("logs"), "--batching", "on", "--max_batch_size", "1",
        "--max_queue_size", str(QUEUE), "--max_threads", "2",
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def body(timeout_us: int | None = None) -> dict:
    doc: dict = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, WIDTH],
                             "data": [0.5] * WIDTH}]}  # fmt: skip
    if timeout_us is not None:
        doc["parameters"] = {"timeout": timeout_us}
    return doc


def metric(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(f"http://{server.http_url}/metrics").text
    total = 0.0
    for series, value in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


async def http_burst(server: Server, n: int, doc: dict) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=f"http://{server.http_url}", timeout=60) as client:
        return await asyncio.gather(
            *(client.post("/v2/models/slow/infer", json=doc) for _ in range(n))
        )


def test_a_full_queue_sheds_http_at_once_with_retry_after(server: Server) -> None:
    shed_before = metric(server, "modelplane_shed_requests_total", protocol="http")
    answers = asyncio.run(http_burst(server, 16, body()))
    ok = [a for a in answers if a.status_code == 200]
    shed = [a for a in answers if a.status_code != 200]
    assert ok and shed
    for answer in shed:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "try again shortly" in answer.json()["error"]
    shed_after = metric(server, "modelplane_shed_requests_total", protocol="http")
    assert shed_after - shed_before == len(shed)


def test_a_full_queue_sheds_grpc_with_resource_exhausted(server: Server) -> None:
    async def burst() -> list[object]:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        inp = grpcaio.InferInput("x", [1, WIDTH], "FP32")
        inp.set_data_from_numpy(np.full((1, WIDTH), 0.5, np.float32))
        try:
            return await asyncio.gather(
                *(client.infer("slow", [inp]) for _ in range(16)), return_exceptions=True
            )
        finally:
            await client.close()

    results = asyncio.run(burst())
    refused = [r for r in results if isinstance(r, InferenceServerException)]
    assert refused and len(refused) < len(results)
    assert {r.status() for r in refused} == {"StatusCode.RESOURCE_EXHAUSTED"}


def test_expired_requests_are_dropped_before_they_run(server: Server) -> None:
    """Triton's `timeout` parameter (µs) over HTTP, the call's deadline over gRPC."""
    runs_before = metric(server, "modelplane_batch_size_count")
    expired_before = metric(server, "modelplane_expired_requests_total", stage="queued")
    # QUEUE requests at once, each with 1 ms to live: at most the first runs.
    answers = asyncio.run(http_burst(server, QUEUE, body(timeout_us=1000)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(504) >= QUEUE - 1, statuses
    for answer in answers:
        if answer.status_code == 504:
            assert "deadline passed" in answer.json()["error"]
    runs = metric(server, "modelplane_batch_size_count") - runs_before
    expired = metric(server, "modelplane_expired_requests_total", stage="queued") - expired_before
    assert runs <= QUEUE - expired
    assert expired >= QUEUE - 1

    with grpc.insecure_channel(server.grpc_url) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        from predictors.protocol.grpc_messages import pb

        request = pb.ModelInferRequest(model_name="slow")
        request.inputs.add(name="x", datatype="FP32", shape=[1, WIDTH])
        request.raw_input_contents.append(np.ones((1, WIDTH), np.float32).tobytes())
        futures = [call.future(request.SerializeToString(), timeout=0.05) for _ in range(QUEUE)]
        codes = [f.exception().code() if f.exception() else grpc.StatusCode.OK for f in futures]
    assert grpc.StatusCode.DEADLINE_EXCEEDED in codes


def test_an_expired_request_is_counted_once_per_protocol(server: Server) -> None:
    """A 1 µs `timeout` has passed by the time the request is decoded: one 504 (or
    DEADLINE_EXCEEDED) and one count in modelplane_expired_requests_total each."""
    from tritonclient.grpc import InferenceServerClient, InferInput

    def expired(protocol: str) -> float:
        return metric(
            server, "modelplane_expired_requests_total", protocol=protocol, stage="queued"
        )

    before = expired("http")
    answer = httpx.post(f"http://{server.http_url}/v2/models/slow/infer", json=body(1))
    assert answer.status_code == 504
    assert expired("http") - before == 1

    before = expired("grpc")
    client = InferenceServerClient(server.grpc_url)
    inp = InferInput("x", [1, WIDTH], "FP32")
    inp.set_data_from_numpy(np.full((1, WIDTH), 0.5, np.float32))
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.infer("slow", [inp], timeout=1)
    finally:
        client.close()
    assert refused.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert expired("grpc") - before == 1


def test_a_bad_timeout_parameter_is_a_400(server: Server) -> None:
    answer = httpx.post(f"http://{server.http_url}/v2/models/slow/infer", json=body(-5))
    assert answer.status_code == 400
    assert "parameter 'timeout' must be a positive number of microseconds" in answer.text


def test_health_checks_never_wait_behind_inference(server: Server) -> None:
    """--max_threads 2 and a queue of 4 busy: Check, ServerReady and metadata still answer
    before the inference they arrived behind is done."""

    async def scenario() -> tuple[float, float]:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        inp = grpcaio.InferInput("x", [1, WIDTH], "FP32")
        inp.set_data_from_numpy(np.full((1, WIDTH), 0.5, np.float32))
        started = time.monotonic()
        work = [asyncio.ensure_future(client.infer("slow", [inp])) for _ in range(QUEUE)]
        await asyncio.sleep(0.05)  # they are in: queued or running
        channel = grpc.aio.insecure_channel(server.grpc_url)
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="slow"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await client.is_server_ready()
        answered = time.monotonic() - started
        await asyncio.gather(*work, return_exceptions=True)
        finished = time.monotonic() - started
        await channel.close()
        await client.close()
        return answered, finished

    answered, finished = asyncio.run(scenario())
    assert answered < finished


def test_http_limits(tmp_path: Path) -> None:
    server = start_server(
        MODEL_STORE, tmp_path, "--models", "wine-onnx", "--max_request_bytes", "200000",
        "--max_json_bytes", "50000", "--max_header_bytes", "8192",
    )  # fmt: skip
    try:
        url = f"http://{server.http_url}/v2/models/wine-onnx/infer"
        big = httpx.post(url, content=b"x" * 300_000)
        assert big.status_code == 413
        assert "more than the 200000 this server takes" in big.json()["error"]
        rows = [[1.0] * 13] * 1000  # ~65 KB of JSON
        doc = {
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [1000, 13], "data": rows}]
        }
        json_part = httpx.post(url, content=json.dumps(doc).encode())
        assert json_part.status_code == 413
        assert "send tensors as binary data" in json_part.json()["error"]
        headers = httpx.get(
            f"http://{server.http_url}/v2/health/live", headers={"x-junk": "a" * 16_000}
        )
        assert headers.status_code == 431
        assert httpx.get(f"http://{server.http_url}/v2/health/live").status_code == 200
    finally:
        server.stop()


def test_liveness_answers_while_a_large_body_is_decoded(bundled_server: Server) -> None:
    """JSON decoding of a large body runs off the event loop (it took the loop for
    seconds: /v2/health/live answered in 5.2 s during one 200 MB body)."""
    # ~12 MB of JSON numbers (under the 16 MiB JSON limit); more rows than the model
    # takes, so the answer is a 400, but only after the whole body was decoded.
    data = np.random.default_rng(0).random(13 * 100_000).round(6).tolist()
    doc = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [len(data) // 13, 13],
                       "data": data}]}  # fmt: skip
    payload = json.dumps(doc).encode()

    async def scenario() -> tuple[float, float]:
        async with httpx.AsyncClient(base_url=f"http://{bundled_server.http_url}", timeout=60) as c:
            started = time.monotonic()
            big = asyncio.ensure_future(c.post("/v2/models/wine-onnx/infer", content=payload))
            await asyncio.sleep(0.02)
            probe = time.monotonic()
            assert (await c.get("/v2/health/live")).status_code == 200
            live = time.monotonic() - probe
            assert (await big).status_code == 400
            return live, time.monotonic() - started

    live, total = asyncio.run(scenario())
    assert live < total / 2, (live, total)
