"""`modelplane bench` reports every figure it was asked for; the runtimes' fast paths hold.

Speed is what the bench reports, never what a test asserts: these tests
check that the numbers are there and well-formed, whatever the machine, and
that what the bench writes (the batching decision) lands in the store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from predictors.bench.baseline import start_kserve_baseline
from predictors.bench.compute_model import (
    COMPUTE_MODEL,
    add_compute_model,
    compute_cnn,
    parameter_count,
)
from predictors.bench.measure import Cell, combine
from predictors.metadata import ModelMetadata
from predictors.model_store import verify
from predictors.runtimes import RuntimeOptions
from predictors.runtimes.onnx_runtime import OnnxRuntime, to_fp16
from tests.support import MODEL_STORE, MODELPLANE

MODEL = "wine-onnx"
MODELS = [MODEL, COMPUTE_MODEL]
PROTOCOLS = ["grpc", "http"]
CONCURRENCY = [1, 4]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    # A store of its own: --record-batching writes into it.
    store = out / "store"
    shutil.copytree(MODEL_STORE / MODEL, store / MODEL)
    # A subprocess, like a user runs it: the bench must not share a process
    # with kserve (both register the `inference.*` protobufs).
    command = [
        MODELPLANE, "bench", "--model-store", str(store), "--models", ",".join(MODELS),
        "--protocols", ",".join(PROTOCOLS), "--concurrency", ",".join(map(str, CONCURRENCY)),
        "--duration", "0.6", "--warmup", "0.2", "--record-batching",
        "--json", str(out / "bench.json"), "--csv", str(out / "bench.csv"),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((out / "bench.json").read_text())
    return {
        "report": doc,
        "stdout": result.stdout,
        "csv": (out / "bench.csv").read_text(),
        "store": store,
    }


@pytest.fixture(scope="module")
def report(bench_run: dict) -> dict:
    return bench_run["report"]


def cells(report: dict, target: str) -> dict[tuple, dict]:
    return {
        (c["model"], c["protocol"], c["batching"], c["concurrency"]): c
        for c in report["results"]
        if c["target"] == target
    }


def test_every_cell_asked_for_is_measured(report: dict) -> None:
    served = cells(report, "modelplane")
    kserve = cells(report, "kserve")
    for model in MODELS:
        for protocol in PROTOCOLS:
            for concurrency in CONCURRENCY:
                for batching in ("on", "off"):
                    assert (model, protocol, batching, concurrency) in served
                # Both models are ONNX, so each has a naive KServe predictor too.
                assert (model, protocol, "-", concurrency) in kserve
    for cell in report["results"]:
        assert cell["requests"] > 0, cell
        assert cell["errors"] == 0, cell
        assert cell["throughput_rps"] > 0
        assert 0 < cell["p50_ms"] <= cell["p99_ms"]
        if cell["target"] != "raw":
            assert cell["throughput_vs_raw"] > 0
            assert cell["p50_vs_raw"] > 0
            # Serving costs CPU in both processes: a zero would mean the
            # wrong process (or nothing) was read.
            assert cell["server_cpu_us"] > 0 and cell["client_cpu_us"] > 0
            assert 0 < cell["server_cpu_percent"] <= 100 * (report["machine"]["cpu_count"] + 1)


def test_mean_batch_rows_come_from_the_server(report: dict) -> None:
    for key, cell in cells(report, "modelplane").items():
        assert cell["batch_rows_mean"] is not None, key
        if cell["batching"] == "off" or cell["concurrency"] == 1:
            # One request, one run: nothing else is queued.
            assert cell["batch_rows_mean"] == pytest.approx(1.0), key
        else:
            assert 1.0 <= cell["batch_rows_mean"] <= max(CONCURRENCY), key
    assert all(c["batch_rows_mean"] is None for c in cells(report, "kserve").values())


def test_raw_baseline_is_measured_at_each_concurrency(report: dict) -> None:
    raw = cells(report, "raw")
    for model in MODELS:
        measured = sorted(c for (m, _, _, c) in raw if m == model)
        assert measured == CONCURRENCY
    assert all(c["runtime"] == "onnxruntime" for c in raw.values())


def test_figures_are_reported(bench_run: dict) -> None:
    report = bench_run["report"]
    figures = {(f["model"], f["figure"]): f for f in report["acceptance"]}
    # Without 8 in --concurrency the highest level asked stands in for it.
    for name in ("grpc_vs_kserve", "grpc_vs_in_process", "grpc_p50_c1"):
        figure = figures[(COMPUTE_MODEL, name)]
        assert figure["value"] > 0 and isinstance(figure["passed"], bool), figure
    assert figures[(COMPUTE_MODEL, "grpc_vs_kserve")]["concurrency"] == max(CONCURRENCY)
    assert figures[(COMPUTE_MODEL, "grpc_p50_c1")]["limit"] == pytest.approx(
        1.3 * (figures[(COMPUTE_MODEL, "grpc_p50_c1")]["in_process_p50_ms"] + 1.0)
    )
    # The overhead-bound model: against KServe, and 1 ms over in-process at c1.
    assert (MODEL, "grpc_vs_kserve") in figures and (MODEL, "grpc_vs_in_process") not in figures
    wine = figures[(MODEL, "grpc_p50_c1")]
    assert wine["limit"] == pytest.approx(wine["in_process_p50_ms"] + 1.0)
    # Neither model's metadata records a measurement, so this run's decision picks
    # the server the figures come from: what --record-batching then writes.
    decisions = {d["model"]: d for d in report["batching_decisions"]}
    for model in MODELS:
        chosen = "on" if decisions[model]["enabled"] else "off"
        for name in ("grpc_vs_kserve", "grpc_p50_c1"):
            assert figures[(model, name)]["batching"] == chosen
            assert figures[(model, name)]["batching_decided_by"] == "this run"
    for model in MODELS:
        assert 0 < figures[(model, "idle_rss")]["value"] < 4096
        assert 0 < figures[(model, "ready_s")]["value"] < 120
    assert "figures (issue 15)" in bench_run["stdout"]


def test_batching_decision_is_recorded_in_the_store(bench_run: dict) -> None:
    report, store = bench_run["report"], bench_run["store"]
    decisions = {d["model"]: d for d in report["batching_decisions"]}
    assert sorted(decisions) == sorted(MODELS)
    for decision in decisions.values():
        assert sorted(decision["on_over_off"]) == sorted(PROTOCOLS)
        assert decision["enabled"] == (decision["speedup"] >= 1.0)
    # Only the store's own model is written; the CNN was built for this run.
    assert report["batching_recorded"] == [
        {"model": MODEL, "version": "1", "enabled": decisions[MODEL]["enabled"]}
    ]
    written = ModelMetadata.read(store / MODEL / "1").batching
    assert written.enabled == decisions[MODEL]["enabled"]
    assert written.measured is not None
    assert written.measured.speedup == pytest.approx(decisions[MODEL]["speedup"], abs=1e-3)
    assert written.measured.concurrency == max(CONCURRENCY)
    assert written.measured.protocols == tuple(decisions[MODEL]["on_over_off"])
    # The rest of metadata.json is untouched: checksums still verify.
    assert verify(store / MODEL / "1", ModelMetadata.read(store / MODEL / "1")) == []


def test_drift_counting_cost_is_reported_with_and_without_a_profile(bench_run: dict) -> None:
    """wine-onnx carries a drift profile, the bench's CNN none: only wine has a cost, measured
    served (next to its twin without a profile, same server) and in process."""
    report = bench_run["report"]
    served = {
        (e["model"], e["protocol"], e["concurrency"]): e for e in report["drift_cost"]["served"]
    }
    assert set(served) == {(MODEL, p, c) for p in PROTOCOLS for c in CONCURRENCY}
    for entry in served.values():
        assert entry["server_cpu_us_with"] > 0 and entry["server_cpu_us_without"] > 0
        assert entry["server_cpu_us_difference"] == pytest.approx(
            entry["server_cpu_us_with"] - entry["server_cpu_us_without"]
        )
        assert entry["throughput_with_over_without"] > 0
    [counting] = report["drift_cost"]["in_process"]
    assert counting["model"] == MODEL and counting["features"] == 13
    assert counting["count_us_batch_1"] > 0 and counting["count_us_batch_n"] > 0
    assert counting["scrape_us"] > 0
    # The twin is the comparison's, not a model of the table or the figures.
    assert {c["model"] for c in report["results"]} == set(MODELS)
    assert "drift counting" in bench_run["stdout"]
    assert f"{MODEL}     served grpc c=1: server CPU" in bench_run["stdout"]


def test_machine_and_csv_are_recorded(bench_run: dict) -> None:
    report = bench_run["report"]
    assert report["machine"]["nproc"] >= 1
    assert report["machine"]["cpu_model"]
    header = bench_run["csv"].splitlines()[0].split(",")
    assert {
        "model", "target", "protocol", "concurrency", "throughput_rps", "p50_ms", "p99_ms",
        "server_cpu_percent", "batch_rows_mean",
    } <= set(header)  # fmt: skip


def test_kserve_baseline_answers_like_onnxruntime(tmp_path: Path) -> None:
    """The yardstick is a working predictor: KServe's server, the model's own outputs."""
    import tritonclient.grpc as grpcclient

    model_file = MODEL_STORE / MODEL / "1" / "model.onnx"
    server = start_kserve_baseline(model_file, MODEL, tmp_path)
    try:
        x = np.random.default_rng(3).random((2, 13), dtype=np.float32) * 100
        client = grpcclient.InferenceServerClient(server.grpc_url)
        tensor = grpcclient.InferInput("features", [2, 13], "FP32")
        tensor.set_data_from_numpy(x)
        got = client.infer(MODEL, [tensor]).as_numpy("probabilities")
        client.close()
    finally:
        server.stop()
    want = ort.InferenceSession(str(model_file)).run(None, {"features": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_compute_model_is_a_cnn_of_this_class(tmp_path: Path) -> None:
    module = compute_cnn()
    assert 1_100_000 <= parameter_count(module) <= 1_300_000
    folder = add_compute_model(tmp_path, COMPUTE_MODEL)
    meta = ModelMetadata.read(folder)
    assert (meta.name, meta.version, meta.format) == (COMPUTE_MODEL, "1", "onnx")
    assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [
        ("image", "FP32", (-1, 3, 64, 64))
    ]
    assert meta.provenance["parameters"] == parameter_count(module)
    assert verify(folder, meta) == []
    # Random weights, but a real network: rows differ and are probabilities.
    x = np.random.default_rng(1).random((3, 3, 64, 64), dtype=np.float32)
    session = ort.InferenceSession(str(folder / "model.onnx"))
    probabilities = session.run(None, {"image": x})[0]
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_rounds_combine_as_medians() -> None:
    """--rounds: each figure is the median of its rounds, so one disturbed round is dropped."""
    figures = [(400.0, 20.0, 2.0, 0), (90.0, 95.0, None, 1), (380.0, 21.0, 3.0, 0)]
    rounds = [
        Cell("m", "modelplane", "onnxruntime", "grpc", "on", 8, requests=100, errors=e,
             throughput_rps=rps, p50_ms=p50, batch_rows_mean=rows)
        for rps, p50, rows, e in figures
    ]  # fmt: skip
    cell = combine(rounds)
    assert (cell.throughput_rps, cell.p50_ms, cell.batch_rows_mean) == (380.0, 21.0, 2.5)
    assert (cell.requests, cell.errors, cell.rounds) == (300, 1, 3)
    assert rounds[0].rounds == 1  # the rounds themselves are left as measured


def test_bench_rejects_bad_flags() -> None:
    result = subprocess.run(
        [MODELPLANE, "bench", "--protocols", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--protocols" in result.stderr


# -- fast paths of the ONNX runtime, checked where no GPU is -------------------


@pytest.mark.parametrize("model,shape", [("digits-onnx", (5, 1, 8, 8)), ("wine-onnx", (5, 13))])
def test_fp16_graph_keeps_fp32_io_and_the_answers(model: str, shape: tuple[int, ...]) -> None:
    path = MODEL_STORE / model / "1" / "model.onnx"
    original = onnx.load(str(path))
    converted = to_fp16(original)
    assert converted is not None
    assert [i.type.tensor_type.elem_type for i in converted.graph.input] == [onnx.TensorProto.FLOAT]
    assert all(i.data_type != onnx.TensorProto.FLOAT for i in converted.graph.initializer), (
        "weights should be float16"
    )
    name = original.graph.input[0].name
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    if model == "wine-onnx":
        x = x * 100  # near the data's own scale, so the softmax is not saturated
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {name: x})[
        0
    ]
    got = ort.InferenceSession(
        converted.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {name: x})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-2)


def test_fp16_and_io_binding_are_skipped_on_cpu() -> None:
    version = MODEL_STORE / "digits-onnx" / "1"
    meta = ModelMetadata.read(version)
    runtime = OnnxRuntime(version / meta.model_file, meta, RuntimeOptions(device="cpu", fp16=True))
    assert runtime.device == "cpu" and runtime.fp16 is False
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    assert runtime.run({"image": x})["probabilities"].shape == (2, 10)


def test_bench_imports_no_kserve(tmp_path: Path) -> None:
    code = (
        "import sys, predictors.cli, predictors.bench.run, predictors.runtimes.onnx_runtime, "
        "predictors.runtimes.torch_runtime, predictors.training.datasets; "
        "assert 'kserve' not in sys.modules, 'bench must not import kserve'"
    )
    python = str(Path(MODELPLANE).parent / "python")
    subprocess.run([python, "-c", code], check=True, timeout=120, cwd=tmp_path)
