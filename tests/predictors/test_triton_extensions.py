"""Triton's model configuration, statistics and model repository extensions, driven by tritonclient.

A real `modelplane serve` on a copy of two bundled ONNX models, called with
tritonclient's HTTP and gRPC clients, sync and asyncio, as Triton's tools
call Triton: the configuration must say what metadata.json says, the
statistics must count exactly the traffic sent (and agree with /metrics),
and a version copied into the store must be loaded and served without a
restart while the other model keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from tests.support import MODEL_STORE, Server, start_server

MODELS = ["digits-onnx", "wine-onnx"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    for name in MODELS:
        shutil.copytree(MODEL_STORE / name, root / name)
    return root


@pytest.fixture(scope="module")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(store, tmp_path_factory.mktemp("logs"))
    try:
        yield server
    finally:
        server.stop()


def wine_input(module: object, rows: int) -> object:
    tensor = module.InferInput("features", [rows, 13], "FP32")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(np.full((rows, 13), 5.0, np.float32))
    return tensor


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # The first scrape imports torch (GPU memory gauges): slow on a busy machine.
    text = httpx.get(f"http://{server.http_url}/metrics", timeout=60).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def ready_gauge(server: Server, name: str, version: str) -> float:
    labels = frozenset({("model_name", name), ("model_version", version)})
    return scrape(server)[("modelplane_model_ready", labels)]


# -- model configuration -------------------------------------------------------


def test_config_says_what_the_store_says(server: Server, store: Path) -> None:
    meta = json.loads((store / "digits-onnx" / "1" / "metadata.json").read_text())
    http = httpclient.InferenceServerClient(server.http_url).get_model_config("digits-onnx")
    assert http["name"] == "digits-onnx"
    assert http["platform"] == meta["platform"] == "onnxruntime_onnx"
    assert http["backend"] == "onnxruntime"
    assert http["max_batch_size"] == meta["max_batch_size"]
    # Triton's convention: with max_batch_size > 0, dims leave out the batch axis.
    assert http["input"][0]["dims"] == meta["inputs"][0]["shape"][1:] == [1, 8, 8]
    assert http["input"][0]["data_type"] == "TYPE_FP32"
    assert http["output"][0]["dims"] == [10]
    assert http["dynamic_batching"]["max_queue_delay_microseconds"] == 0
    assert http["parameters"]["dynamic_batching.max_rows"] == {"string_value": "32"}
    group = http["instance_group"][0]
    assert group["kind"] == "KIND_CPU" and group["count"] == 1  # one batch at a time
    assert http["model_transaction_policy"] == {"decoupled": False}

    grpc = grpcclient.InferenceServerClient(server.grpc_url).get_model_config("digits-onnx", "1")
    assert grpc.config.max_batch_size == http["max_batch_size"]
    assert list(grpc.config.input[0].dims) == [1, 8, 8]

    async def both_async() -> tuple[dict, object]:
        h = httpaio.InferenceServerClient(server.http_url)
        g = grpcaio.InferenceServerClient(server.grpc_url)
        try:
            return await h.get_model_config("wine-onnx"), await g.get_model_config("wine-onnx")
        finally:
            await h.close()
            await g.close()

    http_wine, grpc_wine = asyncio.run(both_async())
    assert http_wine["input"][0]["dims"] == [13]
    assert grpc_wine.config.output[0].name == "probabilities"


def test_errors_are_v2_bodies_tritonclient_decodes(server: Server) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(InferenceServerException, match="Model with name nope does not exist"):
        client.get_model_config("nope")
    with pytest.raises(InferenceServerException, match="no version 9"):
        client.get_model_config("wine-onnx", "9")
    with pytest.raises(InferenceServerException) as grpc_error:
        grpcclient.InferenceServerClient(server.grpc_url).get_model_config("nope")
    assert grpc_error.value.status() == "StatusCode.NOT_FOUND"

    base = f"http://{server.http_url}"
    unknown = httpx.get(f"{base}/v2/nothing/here")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Not Found: GET /v2/nothing/here"}
    wrong_method = httpx.delete(f"{base}/v2/models/wine-onnx")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "DELETE is not allowed on /v2/models/wine-onnx"}


# -- statistics ------------------------------------------------------------------


def test_statistics_count_the_traffic_sent_and_agree_with_metrics(server: Server) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    before = http.get_inference_statistics("wine-onnx")["model_stats"][0]
    rows = [1, 2, 3, 4]
    for n in rows:
        http.infer("wine-onnx", [wine_input(httpclient, n)])
        grpc.infer("wine-onnx", [wine_input(grpcclient, n)])

    async def async_calls() -> None:
        h = httpaio.InferenceServerClient(server.http_url)
        g = grpcaio.InferenceServerClient(server.grpc_url)
        try:
            await h.infer("wine-onnx", [wine_input(httpaio, 5)])
            await g.infer("wine-onnx", [wine_input(grpcaio, 5)])
        finally:
            await h.close()
            await g.close()

    asyncio.run(async_calls())
    bad = httpclient.InferInput("features", [1, 12], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 12), np.float32))
    with pytest.raises(InferenceServerException):
        http.infer("wine-onnx", [bad])

    after = http.get_inference_statistics("wine-onnx")["model_stats"][0]
    assert after["name"] == "wine-onnx" and after["version"] == "1"
    sent = 2 * len(rows) + 2
    stats, was = after["inference_stats"], before["inference_stats"]
    assert stats["success"]["count"] - was["success"]["count"] == sent
    assert stats["fail"]["count"] - was["fail"]["count"] == 1
    # One client at a time: every request ran as its own batch.
    assert after["inference_count"] - before["inference_count"] == 2 * sum(rows) + 10
    assert after["execution_count"] - before["execution_count"] == sent
    assert after["last_inference"] >= before["last_inference"]
    assert after["last_inference"] > 1_700_000_000_000  # ms since the epoch
    batches = {b["batch_size"]: b["compute_infer"]["count"] for b in after["batch_stats"]}
    assert sum(batches.values()) == after["execution_count"]
    assert batches[5] >= 2 and batches[4] >= 2

    # The same numbers, from the Prometheus series.
    samples = scrape(server)
    version = {("model_name", "wine-onnx"), ("model_version", "1")}

    def sample(name: str, **labels: str) -> float:
        return samples[(name, frozenset(version | set(labels.items())))]

    successes = sum(
        sample("modelplane_requests_total", protocol=p, status="200") for p in ("http", "grpc")
    )
    assert stats["success"]["count"] == successes
    assert after["execution_count"] == sample("modelplane_batch_size_count")
    assert after["inference_count"] == sample("modelplane_batch_size_sum")

    def stage(name: str) -> tuple[float, float]:
        count = sample("modelplane_request_stage_seconds_count", stage=name)
        return count, sample("modelplane_request_stage_seconds_sum", stage=name) * 1e9

    def close(ns: int, expected: float) -> bool:
        return abs(ns - expected) < 1000  # float sums in another order

    count, ns = stage("queue")
    assert stats["queue"]["count"] == count and close(stats["queue"]["ns"], ns)
    # Triton's meaning: each compute count is the successful requests (perf_analyzer checks).
    for triton in ("compute_input", "compute_infer", "compute_output"):
        assert stats[triton]["count"] == stats["success"]["count"], triton
    assert close(stats["compute_input"]["ns"], stage("decode")[1])
    assert close(stats["compute_output"]["ns"], stage("encode")[1])
    # Per run, batch_stats are the inference stage; with one request per batch
    # (one client at a time) a request's compute_infer is its batch's run.
    runs, run_ns = stage("inference")
    assert sum(b["compute_infer"]["count"] for b in after["batch_stats"]) == runs
    assert close(sum(b["compute_infer"]["ns"] for b in after["batch_stats"]), run_ns)
    assert close(stats["compute_infer"]["ns"], run_ns)

    # gRPC reports the same; the other model has its own, and all models are listed.
    grpc_stats = grpc.get_inference_statistics("wine-onnx", "1").model_stats[0]
    assert grpc_stats.inference_stats.success.count >= stats["success"]["count"]
    every = http.get_inference_statistics()["model_stats"]
    assert {(s["name"], s["version"]) for s in every} == {("digits-onnx", "1"), ("wine-onnx", "1")}
    with pytest.raises(InferenceServerException, match="does not exist"):
        http.get_inference_statistics("nope")


# -- model repository ------------------------------------------------------------


def test_repository_index_load_and_unload(server: Server, store: Path) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    index = http.get_model_repository_index()
    assert {(m["name"], m["version"], m["state"]) for m in index} == {
        ("digits-onnx", "1", "READY"),
        ("wine-onnx", "1", "READY"),
    }

    # Unload: not ready, readiness and metrics follow; the other model serves on.
    grpc.unload_model("wine-onnx")
    assert not http.is_model_ready("wine-onnx")
    with pytest.raises(InferenceServerException, match="not ready"):
        http.infer("wine-onnx", [wine_input(httpclient, 1)])
    digits = httpclient.InferInput("image", [1, 1, 8, 8], "FP32")
    digits.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float32))
    assert http.infer("digits-onnx", [digits]).as_numpy("probabilities").shape == (1, 10)
    entry = next(m for m in grpc.get_model_repository_index().models if m.name == "wine-onnx")
    assert (entry.state, entry.reason) == ("UNAVAILABLE", "unloaded")
    ready_only = httpx.post(f"http://{server.http_url}/v2/repository/index", json={"ready": True})
    assert [m["name"] for m in ready_only.json()] == ["digits-onnx"]
    assert ready_gauge(server, "wine-onnx", "1") == 0

    http.load_model("wine-onnx")
    assert http.is_model_ready("wine-onnx")
    reloaded = http.infer("wine-onnx", [wine_input(httpclient, 2)])
    assert reloaded.as_numpy("probabilities").shape == (2, 3)

    # A new version copied into the store is served after a load, without a restart.
    shutil.copytree(store / "wine-onnx" / "1", store / "wine-onnx" / "2")
    meta_path = store / "wine-onnx" / "2" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = "2"
    meta_path.write_text(json.dumps(meta))

    async def load_async() -> None:
        client = grpcaio.InferenceServerClient(server.grpc_url)
        try:
            await client.load_model("wine-onnx")
        finally:
            await client.close()

    asyncio.run(load_async())
    assert http.is_model_ready("wine-onnx", "2") and http.is_model_ready("wine-onnx", "1")
    result = http.infer("wine-onnx", [wine_input(httpclient, 1)])
    assert result.get_response()["model_version"] == "2"
    assert http.get_model_metadata("wine-onnx")["versions"] == ["1", "2"]
    assert ready_gauge(server, "wine-onnx", "2") == 1
    assert ("wine-onnx", "2", "READY") in {
        (m["name"], m["version"], m["state"]) for m in http.get_model_repository_index()
    }


def test_bad_load_requests_are_refused(server: Server) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(InferenceServerException, match="not in the model store"):
        http.load_model("no-such-model")
    with pytest.raises(InferenceServerException, match="must be letters, digits"):
        http.load_model("..")
    with pytest.raises(InferenceServerException, match="config cannot be given here"):
        http.load_model("wine-onnx", config=json.dumps({"max_batch_size": 1}))
    with pytest.raises(InferenceServerException) as refused:
        grpcclient.InferenceServerClient(server.grpc_url).unload_model("no-such-model")
    assert refused.value.status() == "StatusCode.NOT_FOUND"
    base = f"http://{server.http_url}/v2/repository"
    escape = httpx.post(f"{base}/models/%2E%2E%2Fetc/load")
    assert escape.status_code in (400, 404) and "error" in escape.json()


def test_config_of_an_unbatched_model(tmp_path: Path) -> None:
    """--batching off: no dynamic_batching, and as many instances as runs go at once."""
    server = start_server(
        MODEL_STORE, tmp_path, "--models", "wine-onnx", "--batching", "off", "--parallel_runs", "3"
    )
    try:
        config = httpclient.InferenceServerClient(server.http_url).get_model_config("wine-onnx")
    finally:
        server.stop()
    assert "dynamic_batching" not in config
    assert "dynamic_batching.max_rows" not in config["parameters"]
    assert config["instance_group"][0]["count"] == 3
    assert config["max_batch_size"] == 256  # still one request's most rows


def test_load_under_model_name(tmp_path: Path) -> None:
    """KServe passes the InferenceService name as --model_name; load finds the model by it."""
    store = tmp_path / "store"
    shutil.copytree(MODEL_STORE / "wine-onnx", store / "wine-onnx")
    server = start_server(store, tmp_path, "--model_name", "my_wine")
    try:
        client = httpclient.InferenceServerClient(server.http_url)
        shutil.copytree(store / "wine-onnx" / "1", store / "wine-onnx" / "2")
        meta_path = store / "wine-onnx" / "2" / "metadata.json"
        meta_path.write_text(meta_path.read_text().replace('"version": "1"', '"version": "2"'))
        waiting = {
            (m["name"], m["version"], m["state"]) for m in client.get_model_repository_index()
        }
        assert waiting == {("my_wine", "1", "READY"), ("my_wine", "2", "UNAVAILABLE")}
        client.load_model("my_wine")
        assert client.is_model_ready("my_wine", "2")
        assert (
            client.infer("my_wine", [wine_input(httpclient, 1)]).get_response()["model_version"]
            == "2"
        )
        assert {(m["name"], m["version"]) for m in client.get_model_repository_index()} == {
            ("my_wine", "1"),
            ("my_wine", "2"),
        }
    finally:
        server.stop()
