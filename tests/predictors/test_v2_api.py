"""The V2 endpoints answer real tritonclient calls with what metadata.json says."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support import MODEL_STORE, Server

MODELS = ["digits-onnx", "digits-torch", "wine-onnx", "wine-torch"]


def stored_metadata(name: str) -> dict:
    return json.loads((MODEL_STORE / name / "1" / "metadata.json").read_text())


def test_health_and_server_metadata(bundled_server: Server) -> None:
    http = httpclient.InferenceServerClient(bundled_server.http_url)
    grpc = grpcclient.InferenceServerClient(bundled_server.grpc_url)
    assert http.is_server_live() and http.is_server_ready()
    assert grpc.is_server_live() and grpc.is_server_ready()
    assert http.get_server_metadata()["name"] == "modelplane"
    assert "binary_tensor_data" in grpc.get_server_metadata(as_json=True)["extensions"]


@pytest.mark.parametrize("name", MODELS)
def test_model_metadata_matches_store(bundled_server: Server, name: str) -> None:
    stored = stored_metadata(name)
    want_inputs = [{k: t[k] for k in ("name", "datatype", "shape")} for t in stored["inputs"]]
    want_outputs = [{k: t[k] for k in ("name", "datatype", "shape")} for t in stored["outputs"]]

    http_meta = httpclient.InferenceServerClient(bundled_server.http_url).get_model_metadata(name)
    assert http_meta["inputs"] == want_inputs
    assert http_meta["outputs"] == want_outputs
    assert http_meta["versions"] == ["1"]
    assert http_meta["platform"] == stored["platform"]
    assert http_meta["parameters"]["state"] == "READY"
    assert http_meta["parameters"]["labels"] == stored["labels"]

    grpc_meta = grpcclient.InferenceServerClient(bundled_server.grpc_url).get_model_metadata(
        name, as_json=True
    )
    assert [
        {"name": t["name"], "datatype": t["datatype"], "shape": [int(d) for d in t["shape"]]}
        for t in grpc_meta["inputs"]
    ] == want_inputs
    assert grpc_meta["platform"] == stored["platform"]


def test_versioned_routes(bundled_server: Server) -> None:
    http = httpclient.InferenceServerClient(bundled_server.http_url)
    grpc = grpcclient.InferenceServerClient(bundled_server.grpc_url)
    assert http.is_model_ready("wine-onnx", "1")
    assert grpc.is_model_ready("wine-onnx", "1")
    assert http.get_model_metadata("wine-onnx", "1")["name"] == "wine-onnx"
    x = np.ones((1, 13), dtype=np.float32) * 5
    inp = httpclient.InferInput("features", [1, 13], "FP32")
    inp.set_data_from_numpy(x)
    result = http.infer("wine-onnx", [inp], model_version="1")
    assert result.get_response()["model_version"] == "1"
    ginp = grpcclient.InferInput("features", [1, 13], "FP32")
    ginp.set_data_from_numpy(x)
    gresult = grpc.infer("wine-onnx", [ginp], model_version="1")
    np.testing.assert_allclose(gresult.as_numpy("probabilities"), result.as_numpy("probabilities"))

    with pytest.raises(InferenceServerException, match="no version 7; available versions: 1"):
        http.infer("wine-onnx", [inp], model_version="7")
    r = httpx.get(f"http://{bundled_server.http_url}/v2/models/wine-onnx/versions/7/ready")
    assert r.status_code == 404


def test_list_models_and_metrics(bundled_server: Server) -> None:
    r = httpx.get(f"http://{bundled_server.http_url}/v2/models")
    assert r.json() == {"models": sorted(MODELS)}
    text = httpx.get(f"http://{bundled_server.http_url}/metrics").text
    for name in MODELS:
        assert f'modelplane_model_ready{{model_name="{name}",model_version="1"}} 1.0' in text
