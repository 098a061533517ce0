"""Bad requests get a clear 400/404 (INVALID_ARGUMENT/NOT_FOUND) and the server stays up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper

# tritonclient's copy of the V2 protos: KServe's define the same `inference.*`
# names, and protobuf refuses both in one process.
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from predictors.cli import main as modelplane
from tests.support import MODEL_STORE, Server, save_onnx, start_server

GOOD_WINE = [13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]


def adder_onnx(path: Path) -> Path:
    """A two-input model (x + y), to test missing and extra inputs."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["sum"])], "adder", [x, y], [out]
    )
    return save_onnx(graph, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("store")
    for name in ("wine-onnx", "digits-torch"):
        (store / name).symlink_to(MODEL_STORE / name)
    assert (
        modelplane(
            [
                "store",
                "add",
                "--store",
                str(store),
                "--name",
                "adder",
                str(adder_onnx(store.parent / "adder.onnx")),
            ]
        )
        == 0
    )
    server = start_server(store, tmp_path_factory.mktemp("logs"))
    try:
        yield server
    finally:
        server.stop()


def wine(
    data: object = GOOD_WINE,
    shape: object = (1, 13),
    datatype: str = "FP32",
    name: str = "features",
) -> dict:
    return {"name": name, "datatype": datatype, "shape": list(shape), "data": data}


ADDER_X = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
ADDER_Y = {"name": "y", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}

# (case, model, JSON body or raw bytes, HTTP status, message fragment)
HTTP_CASES = [
    ("unknown model", "nope", {"inputs": [wine()]}, 404, "Model with name nope does not exist"),
    ("missing input", "adder", {"inputs": [ADDER_X]}, 400, "missing input 'y' (FP32 [-1,4])"),
    (
        "extra input",
        "adder",
        {"inputs": [ADDER_X, ADDER_Y, {**ADDER_Y, "name": "z"}]},
        400,
        "unexpected input 'z': model adder takes 'x' (FP32 [-1,4]), 'y' (FP32 [-1,4])",
    ),
    (
        "wrong datatype",
        "wine-onnx",
        {"inputs": [wine(datatype="INT64", data=[1] * 13)]},
        400,
        "input 'features': datatype INT64 does not match the model's FP32",
    ),
    (
        "wrong shape",
        "wine-onnx",
        {"inputs": [wine(shape=(1, 12), data=GOOD_WINE[:12])]},
        400,
        "input 'features': shape [1,12] does not match the model's [-1,13]",
    ),
    (
        "data length",
        "wine-onnx",
        {"inputs": [wine(data=GOOD_WINE[:12])]},
        400,
        "input 'features': shape [1,13] needs 13 values, got 12",
    ),
    ("malformed JSON", "wine-onnx", b'{"inputs": [', 400, "request body is not valid JSON"),
    (
        "non-numeric",
        "wine-onnx",
        {"inputs": [wine(data=["a"] * 13)]},
        400,
        "input 'features': data must be numbers for datatype FP32, got strings",
    ),
    (
        "ragged data",
        "wine-onnx",
        {"inputs": [wine(data=[[1, 2], [3]])]},
        400,
        "input 'features': data is not a rectangular array",
    ),
    (
        "batch over max",
        "wine-onnx",
        {"inputs": [wine(shape=(300, 13), data=GOOD_WINE * 300)]},
        400,
        "input 'features': batch size 300 is over the model's max_batch_size 256",
    ),
    (
        "unknown datatype",
        "wine-onnx",
        {"inputs": [wine(datatype="FP33")]},
        400,
        "input 'features': unsupported datatype 'FP33'",
    ),
    ("no inputs", "wine-onnx", {"inputs": []}, 400, "non-empty 'inputs' list"),
    (
        "unknown output",
        "wine-onnx",
        {"inputs": [wine()], "outputs": [{"name": "logits"}]},
        400,
        "requested output 'logits' is not an output of model wine-onnx",
    ),
]


def still_serving(server: Server) -> None:
    base = f"http://{server.http_url}"
    assert httpx.get(f"{base}/v2/health/live").json() == {"live": True}
    r = httpx.post(f"{base}/v2/models/wine-onnx/infer", json={"inputs": [wine()]})
    assert r.status_code == 200, r.text
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest()).live


@pytest.mark.parametrize(
    "case,model,body,status,message", HTTP_CASES, ids=[c[0] for c in HTTP_CASES]
)
def test_http_bad_input(
    server: Server, case: str, model: str, body: object, status: int, message: str
) -> None:
    url = f"http://{server.http_url}/v2/models/{model}/infer"
    if isinstance(body, bytes):
        r = httpx.post(url, content=body, headers={"content-type": "application/json"})
    else:
        r = httpx.post(url, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    still_serving(server)


def grpc_request(
    model: str, inputs: list[dict], raw: list[bytes] | None = None, version: str = ""
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for item in inputs:
        tensor = request.inputs.add(
            name=item["name"], datatype=item["datatype"], shape=item["shape"]
        )
        if raw is None and item.get("data") is not None:
            data = item["data"]
            if item["datatype"] == "FP32":
                tensor.contents.fp32_contents.extend(data)
            elif item["datatype"] == "INT64":
                tensor.contents.int64_contents.extend(data)
    if raw is not None:
        request.raw_input_contents.extend(raw)
    return request


GRPC_CASES = [
    (
        "unknown model",
        grpc_request("nope", [wine()]),
        grpc.StatusCode.NOT_FOUND,
        "Model with name nope does not exist",
    ),
    (
        "unknown version",
        grpc_request("wine-onnx", [wine()], version="9"),
        grpc.StatusCode.NOT_FOUND,
        "Model wine-onnx has no version 9",
    ),
    (
        "missing input",
        grpc_request("adder", [ADDER_X]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "missing input 'y'",
    ),
    (
        "extra input",
        grpc_request("adder", [ADDER_X, ADDER_Y, {**ADDER_Y, "name": "z"}]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unexpected input 'z'",
    ),
    (
        "wrong datatype",
        grpc_request("wine-onnx", [wine(datatype="INT64", data=[1] * 13)]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "datatype INT64 does not match the model's FP32",
    ),
    (
        "wrong shape",
        grpc_request("wine-onnx", [wine(shape=(13,))]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "shape [13] does not match the model's [-1,13]",
    ),
    (
        "data length",
        grpc_request("wine-onnx", [wine(data=GOOD_WINE[:12])]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "needs 13 values, got 12",
    ),
    (
        "raw bytes length",
        grpc_request("wine-onnx", [wine(data=None)], raw=[b"\0" * 50]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "50 bytes of binary data is not a whole number of 4-byte",
    ),
    (
        "batch over max",
        grpc_request(
            "wine-onnx",
            [wine(shape=(300, 13), data=None)],
            raw=[np.zeros((300, 13), np.float32).tobytes()],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "batch size 300 is over the model's max_batch_size 256",
    ),
]


@pytest.mark.parametrize("case,request_,code,message", GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_grpc_bad_input(
    server: Server, case: str, request_: pb.ModelInferRequest, code: grpc.StatusCode, message: str
) -> None:
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request_)
    assert info.value.code() == code
    assert message in info.value.details()
    still_serving(server)


def test_tritonclient_sees_the_message(server: Server) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    x = np.zeros((1, 12), np.float32)
    for module, url in ((httpclient, server.http_url), (grpcclient, server.grpc_url)):
        inp = module.InferInput("features", [1, 12], "FP32")
        inp.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException, match=r"shape \[1,12\] does not match"):
            module.InferenceServerClient(url).infer("wine-onnx", [inp])
    still_serving(server)
