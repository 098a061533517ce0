"""The binary tensor data extension gives the same tensors as JSON, both ways."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

from tests.support import Server


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_binary_and_json_parity(bundled_server: Server, binary_in: bool, binary_out: bool) -> None:
    client = httpclient.InferenceServerClient(bundled_server.http_url)
    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    inp = httpclient.InferInput("image", [5, 1, 8, 8], "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)
    got = client.infer("digits-onnx", [inp], outputs=[out]).as_numpy("probabilities")

    plain = httpx.post(
        f"http://{bundled_server.http_url}/v2/models/digits-onnx/infer",
        json={
            "inputs": [
                {
                    "name": "image",
                    "datatype": "FP32",
                    "shape": [5, 1, 8, 8],
                    "data": x.reshape(-1).tolist(),
                }
            ]
        },
    ).json()
    reference = np.asarray(plain["outputs"][0]["data"], dtype=np.float32).reshape(5, 10)
    np.testing.assert_array_equal(got, reference)


def test_raw_binary_request_with_curl_style_headers(bundled_server: Server) -> None:
    x = np.arange(13, dtype=np.float32) + 1
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": [1, 13],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    r = httpx.post(
        f"http://{bundled_server.http_url}/v2/models/wine-onnx/infer",
        content=header + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    json_length = int(r.headers["inference-header-content-length"])
    doc = orjson.loads(r.content[:json_length])
    output = doc["outputs"][0]
    assert output["parameters"]["binary_data_size"] == 12
    probs = np.frombuffer(r.content[json_length:], dtype="<f4")
    assert probs.shape == (3,)
    assert abs(float(probs.sum()) - 1.0) < 1e-5


def test_binary_size_past_the_end_is_a_clear_400(bundled_server: Server) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP32",
                    "shape": [1, 13],
                    "parameters": {"binary_data_size": 52},
                }
            ]
        }
    )
    r = httpx.post(
        f"http://{bundled_server.http_url}/v2/models/wine-onnx/infer",
        content=header + b"\0" * 20,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400
    assert (
        "input 'features': binary_data_size 52 runs past the end of the body" in r.json()["error"]
    )
