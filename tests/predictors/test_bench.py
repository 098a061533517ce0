"""`modelplane bench` reports every figure it was asked for; the runtimes' fast paths hold.

Speed is what the bench reports, never what a test asserts: these tests
check that the numbers are there and well-formed, whatever the machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from predictors.metadata import ModelMetadata
from predictors.runtimes import RuntimeOptions, available_cpus, intra_op_threads
from predictors.runtimes.onnx_runtime import OnnxRuntime, to_fp16
from tests.support import MODEL_STORE, MODELPLANE

MODEL = "wine-onnx"
PROTOCOLS = ["grpc", "http"]
CONCURRENCY = [1, 4]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    # A subprocess, like a user runs it: the bench must not share a process
    # with kserve (both register the `inference.*` protobufs).
    result = subprocess.run(
        [
            MODELPLANE,
            "bench",
            "--model-store",
            str(MODEL_STORE),
            "--models",
            MODEL,
            "--protocols",
            ",".join(PROTOCOLS),
            "--concurrency",
            ",".join(map(str, CONCURRENCY)),
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
            str(out / "bench.json"),
            "--csv",
            str(out / "bench.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(a) latency overhead" in result.stdout
    assert "(b) batching" in result.stdout
    doc = json.loads((out / "bench.json").read_text())
    doc["_csv"] = (out / "bench.csv").read_text()
    return doc


def test_every_cell_asked_for_is_measured(report: dict) -> None:
    served = {
        (c["model"], c["protocol"], c["batching"], c["concurrency"])
        for c in report["results"]
        if c["target"] == "modelplane"
    }
    for protocol in PROTOCOLS:
        for concurrency in CONCURRENCY:
            for batching in ("on", "off"):
                assert (MODEL, protocol, batching, concurrency) in served
    for cell in report["results"]:
        assert cell["requests"] > 0, cell
        assert cell["errors"] == 0, cell
        assert cell["throughput_rps"] > 0
        assert 0 < cell["p50_ms"] <= cell["p99_ms"]
        if cell["target"] == "modelplane":
            assert cell["throughput_vs_raw"] > 0
            assert cell["p50_vs_raw"] > 0
            # Serving costs CPU in both processes: a zero would mean the
            # wrong process (or nothing) was read.
            assert cell["server_cpu_us"] > 0 and cell["client_cpu_us"] > 0


def test_raw_baseline_is_measured_at_each_concurrency(report: dict) -> None:
    raw = {
        c["concurrency"]: c
        for c in report["results"]
        if c["target"] == "raw" and c["model"] == MODEL
    }
    assert sorted(raw) == CONCURRENCY
    assert all(
        c["runtime"] == "onnxruntime" and c["protocol"] == "in-process" for c in raw.values()
    )


def test_acceptance_figures_are_reported(report: dict) -> None:
    latency = report["acceptance"]["latency_c1"]["figures"]
    assert [f["model"] for f in latency] == [MODEL]
    assert latency[0]["ratio"] > 0 and isinstance(latency[0]["passed"], bool)
    speedup = report["acceptance"]["batching_speedup"]["figures"]
    assert sorted(f["protocol"] for f in speedup) == sorted(PROTOCOLS)
    # Without 16 in --concurrency the highest level asked stands in for it.
    assert all(f["concurrency"] == max(CONCURRENCY) and f["ratio"] > 0 for f in speedup)


def test_machine_and_csv_are_recorded(report: dict) -> None:
    assert report["machine"]["nproc"] >= 1
    assert report["machine"]["cpu_model"]
    header = report["_csv"].splitlines()[0].split(",")
    assert {"model", "protocol", "concurrency", "throughput_rps", "p50_ms", "p99_ms"} <= set(header)


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


def test_threads_leave_the_event_loop_a_core() -> None:
    assert intra_op_threads(3) == 3
    assert intra_op_threads(0) == max(1, available_cpus() - 1)


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
        "import sys, predictors.cli, predictors.bench, predictors.runtimes.onnx_runtime, "
        "predictors.runtimes.torch_runtime, predictors.training.datasets; "
        "assert 'kserve' not in sys.modules, 'bench must not import kserve'"
    )
    python = str(Path(MODELPLANE).parent / "python")
    subprocess.run([python, "-c", code], check=True, timeout=120, cwd=tmp_path)
