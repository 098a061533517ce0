"""A missing or corrupt model does not go ready, says why, and the others keep serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support import MODEL_STORE, start_server


def test_corrupt_and_missing_models(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for name in ("wine-onnx", "wine-torch", "digits-onnx"):
        shutil.copytree(MODEL_STORE / name, store / name)
    with (store / "wine-torch" / "1" / "model.pt").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"corrupted!")
    (store / "digits-onnx" / "1" / "model.onnx").unlink()

    server = start_server(store, tmp_path)
    try:
        base = f"http://{server.http_url}"
        http = httpclient.InferenceServerClient(server.http_url)
        grpc = grpcclient.InferenceServerClient(server.grpc_url)
        assert http.is_server_ready()  # one model serves, so the server does
        assert http.is_model_ready("wine-onnx")
        assert not http.is_model_ready("wine-torch")
        assert not grpc.is_model_ready("wine-torch")
        assert not grpc.is_model_ready("digits-onnx")

        ready = httpx.get(f"{base}/v2/models/wine-torch/ready")
        assert ready.status_code == 503
        assert "model.pt checksum mismatch" in ready.json()["error"]
        meta = http.get_model_metadata("digits-onnx")
        assert meta["parameters"]["state"] == "FAILED"
        assert "model.onnx is missing" in meta["parameters"]["error"]

        inp = httpclient.InferInput("features", [1, 13], "FP32")
        inp.set_data_from_numpy(np.ones((1, 13), np.float32))
        with pytest.raises(InferenceServerException, match="wine-torch is not ready"):
            http.infer("wine-torch", [inp])
        assert http.infer("wine-onnx", [inp]).as_numpy("probabilities").shape == (1, 3)
        metrics = httpx.get(f"{base}/metrics").text
        assert 'modelplane_model_ready{model_name="wine-torch",model_version="1"} 0.0' in metrics
    finally:
        server.stop()
    log = server.log()
    assert "model wine-torch version 1 failed to load" in log
    assert "model digits-onnx version 1 failed to load" in log


def test_store_with_no_valid_model_never_goes_ready(tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(MODEL_STORE / "wine-onnx", store / "wine-onnx")
    (store / "wine-onnx" / "1" / "model.onnx").write_bytes(b"garbage")
    server = start_server(store, tmp_path, wait_ready=False)
    try:
        # Loading finishes quickly for a tiny store; poll (bounded) until it has.
        client = httpclient.InferenceServerClient(server.http_url)
        for _ in range(100):
            meta = client.get_model_metadata("wine-onnx")
            if meta["parameters"]["state"] != "LOADING":
                break
        assert meta["parameters"]["state"] == "FAILED"
        assert httpx.get(f"http://{server.http_url}/v2/health/ready").status_code == 503
        assert client.is_server_live()
    finally:
        server.stop()
