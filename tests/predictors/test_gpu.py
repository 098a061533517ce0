"""CUDA paths: run where a GPU is, skipped (with the reason) on CPU machines like CI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
import tritonclient.grpc as grpcclient

from tests.support import MODEL_STORE, Server, start_server

pytestmark = pytest.mark.gpu

HAS_TORCH_CUDA = torch.cuda.is_available()
HAS_ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    models = ",".join(
        (["digits-torch"] if HAS_TORCH_CUDA else []) + (["digits-onnx"] if HAS_ORT_CUDA else [])
    )
    if not models:
        pytest.skip(
            "no CUDA device: torch.cuda.is_available() is False and onnxruntime "
            "has no CUDAExecutionProvider (install the 'gpu' extra on a GPU machine)"
        )
    server = start_server(
        MODEL_STORE, tmp_path_factory.mktemp("gpu"), "--models", models, "--device", "cuda"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "model,available",
    [("digits-torch", HAS_TORCH_CUDA), ("digits-onnx", HAS_ORT_CUDA)],
)
def test_model_runs_on_cuda_and_matches_cpu(
    gpu_server: Server, model: str, available: bool
) -> None:
    if not available:
        pytest.skip(f"{model}: its runtime has no CUDA here")
    meta = httpx.get(f"http://{gpu_server.http_url}/v2/models/{model}").json()
    assert meta["parameters"]["device"] == "cuda:0"
    x = np.random.default_rng(3).random((64, 1, 8, 8), dtype=np.float32)
    client = grpcclient.InferenceServerClient(gpu_server.grpc_url)
    inp = grpcclient.InferInput("image", [64, 1, 8, 8], "FP32")
    inp.set_data_from_numpy(x)
    got = client.infer(model, [inp]).as_numpy("probabilities")
    session = ort.InferenceSession(
        str(MODEL_STORE / "digits-onnx" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(got, session.run(None, {"image": x})[0], atol=1e-4)
    text = httpx.get(f"http://{gpu_server.http_url}/metrics").text
    assert 'modelplane_gpu_memory_used_bytes{device="cuda:0"}' in text


def test_asking_for_cuda_without_a_gpu_fails_the_model_clearly(tmp_path) -> None:
    if HAS_TORCH_CUDA:
        pytest.skip("this machine has a CUDA device")
    server = start_server(
        MODEL_STORE, tmp_path, "--models", "wine-torch", "--device", "cuda", wait_ready=False
    )
    try:
        for _ in range(200):
            meta = httpx.get(f"http://{server.http_url}/v2/models/wine-torch").json()
            if meta["parameters"]["state"] != "LOADING":
                break
        assert meta["parameters"]["state"] == "FAILED"
        assert "device cuda was asked for, but" in meta["parameters"]["error"]
    finally:
        server.stop()
