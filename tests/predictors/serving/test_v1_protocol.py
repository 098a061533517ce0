"""KServe's V1 protocol beside V2, as KServe's own predictors and SDK client speak it.

Routes and answers: kserve 0.21.0 protocol/rest/v1_endpoints.py (V1Endpoints:
models, model_ready, predict, explain). KServe's sklearn server answers
`{"predictions": model.predict(instances).tolist()}`
(python/sklearnserver/sklearnserver/model.py, SKLearnModel.predict): one entry
per instance, shaped like the model's output row. The KServe SDK's own
InferenceRESTClient runs in a subprocess (its protobufs clash with
tritonclient's in one process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import numpy as np
import pytest

from predictors.training import datasets
from tests.support import Server

SEED = 20261123  # predictors/training/build.py SEED: the bundled models' split


def v2_probabilities(server: Server, model: str, name: str, x: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [
            {"name": name, "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
        ]
    }
    response = httpx.post(f"http://{server.http_url}/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


@pytest.mark.parametrize(
    ("model", "name", "family"),
    [
        ("wine-onnx", "features", "wine"),
        ("wine-torch", "features", "wine"),
        ("digits-onnx", "image", "digits"),
        ("digits-torch", "image", "digits"),
    ],
)
def test_v1_predict_matches_v2(bundled_server: Server, model: str, name: str, family: str) -> None:
    x = datasets.FAMILIES[family](SEED).x_test[:5]
    response = httpx.post(
        f"http://{bundled_server.http_url}/v1/models/{model}:predict",
        json={"instances": x.tolist()},
    )
    assert response.status_code == 200, response.text
    predictions = np.asarray(response.json()["predictions"], dtype=np.float32)
    expected = v2_probabilities(bundled_server, model, name, x)
    assert predictions.shape == expected.shape == (5, expected.shape[1])
    np.testing.assert_allclose(predictions, expected, atol=1e-5)


def test_v1_model_list_and_readiness(bundled_server: Server) -> None:
    base = f"http://{bundled_server.http_url}/v1/models"
    assert set(httpx.get(base).json()["models"]) >= {"wine-onnx", "digits-torch"}
    assert httpx.get(f"{base}/wine-onnx").json() == {"name": "wine-onnx", "ready": True}
    missing = httpx.get(f"{base}/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Model with name nope does not exist."}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "request body is not valid JSON"),
        (b"[1]", 'request body must be a JSON object: {"instances": [...]}'),
        (b'{"instances": []}', "request must have a non-empty 'instances' list"),
        (b'{"rows": [[1]]}', "request must have a non-empty 'instances' list"),
        (
            b'{"instances": [[1, 2], [3]]}',
            "input 'features': instances are not a rectangular array of numbers",
        ),
        (
            b'{"instances": [[1, 2, 3]]}',
            "input 'features': shape [1,3] does not match the model's [-1,13]",
        ),
        (
            b'{"instances": [["a", "b"]]}',
            "input 'features': data must be numbers for datatype FP32, got strings",
        ),
    ],
)
def test_bad_v1_input_is_a_400_naming_the_problem(
    bundled_server: Server, body: bytes, message: str
) -> None:
    response = httpx.post(
        f"http://{bundled_server.http_url}/v1/models/wine-onnx:predict", content=body
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(message), response.json()


def test_explain_is_not_implemented(bundled_server: Server) -> None:
    response = httpx.post(
        f"http://{bundled_server.http_url}/v1/models/wine-onnx:explain", json={"instances": []}
    )
    assert response.status_code == 501
    assert response.json() == {"error": "model wine-onnx has no explainer"}


KSERVE_CLIENTS = textwrap.dedent(
    """
    import asyncio, json, sys
    http_url, grpc_url, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.argv = sys.argv[:1]  # kserve parses sys.argv when imported
    import numpy as np
    from kserve import InferenceRESTClient, RESTConfig, InferenceGRPCClient
    from kserve.protocol.infer_type import InferInput, InferRequest

    async def main():
        v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
        answer = await v1.infer(f"http://{http_url}", {"instances": rows}, model_name="wine-onnx")
        await v1.close()
        inp = InferInput("features", [len(rows), 13], "FP32")
        inp.set_data_from_numpy(np.asarray(rows, np.float32), binary_data=False)
        v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
        v2_answer = await v2.infer(f"http://{http_url}", InferRequest("wine-onnx", [inp]),
                                   model_name="wine-onnx")
        await v2.close()
        grpc = InferenceGRPCClient(grpc_url)
        ginp = InferInput("features", [len(rows), 13], "FP32")
        ginp.set_data_from_numpy(np.asarray(rows, np.float32))
        grpc_answer = await grpc.infer(InferRequest("wine-onnx", [ginp]))
        await grpc.close()
        print(json.dumps({
            "v1": answer["predictions"],
            "v2": v2_answer.outputs[0].as_numpy().tolist(),
            "grpc": grpc_answer.outputs[0].as_numpy().tolist(),
        }))

    asyncio.run(main())
    """
)


def test_kserve_sdk_clients_work_unchanged(bundled_server: Server) -> None:
    """KServe's own REST (V1, V2) and gRPC clients (kserve/inference_client.py)."""
    rows = datasets.wine(SEED).x_test[:3].tolist()
    result = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENTS, bundled_server.http_url,
         bundled_server.grpc_url, json.dumps(rows)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    expected = v2_probabilities(
        bundled_server, "wine-onnx", "features", np.asarray(rows, np.float32)
    )
    for protocol in ("v1", "v2", "grpc"):
        np.testing.assert_allclose(answers[protocol], expected, atol=1e-5, err_msg=protocol)
