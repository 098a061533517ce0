"""Status codes that tell the truth, and error bodies that say nothing of the server.

A client that hangs up is not a server error (it used to be counted as
status="500", with an ERROR traceback: false input to the error-ratio
alert). A model failing at run time is answered in one line, with the
runtime's own text only in the log.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper, numpy_helper

from predictors.cli import main as modelplane
from tests.support import MODEL_STORE, Server, save_onnx, start_server


def gather_onnx(path: Path) -> Path:
    """out = table[index]: an index past the table fails inside onnxruntime, at run time."""
    table = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "index"], ["out"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("index", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2])],
        [table],
    )
    return save_onnx(graph, path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    store = tmp_path_factory.mktemp("store")
    (store / "wine-onnx").symlink_to(MODEL_STORE / "wine-onnx")
    source = gather_onnx(store.parent / "gather.onnx")
    assert modelplane(["store", "add", "--store", str(store), "--name", "gather", str(source)]) == 0
    server = start_server(store, tmp_path_factory.mktemp("logs"))
    try:
        yield server
    finally:
        server.stop()


def requests_total(server: Server, status: str) -> float:
    text = httpx.get(f"http://{server.http_url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("modelplane_requests_total{") and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_client_hanging_up_mid_body_is_not_a_server_error(server: Server) -> None:
    before_499, before_500 = requests_total(server, "499"), requests_total(server, "500")
    host, port = server.http_url.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v2/models/wine-onnx/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            b'{"inputs": ['
        )
        time.sleep(0.2)
    for _ in range(50):  # the server notices the hang-up asynchronously
        if requests_total(server, "499") > before_499:
            break
        time.sleep(0.1)
    assert requests_total(server, "499") == before_499 + 1
    assert requests_total(server, "500") == before_500
    assert "ClientDisconnect" not in server.log()


def test_a_run_time_failure_is_one_line_for_the_client(server: Server) -> None:
    body = {"inputs": [{"name": "index", "datatype": "INT64", "shape": [1], "data": [99]}]}
    answer = httpx.post(f"http://{server.http_url}/v2/models/gather/infer", json=body)
    assert answer.status_code == 500
    message = answer.json()["error"]
    assert re.fullmatch(
        r"model gather version 1 failed to run this request \(\w+\); "
        r"the server log has the details",
        message,
    ), message
    client = grpcclient.InferenceServerClient(server.grpc_url)
    inp = grpcclient.InferInput("index", [1], "INT64")
    inp.set_data_from_numpy(np.array([99], np.int64))
    with pytest.raises(Exception) as failure:
        client.infer("gather", [inp])
    assert failure.value.status() == "StatusCode.INTERNAL"  # type: ignore[attr-defined]
    assert failure.value.message() == message  # type: ignore[attr-defined]
    # The runtime's own words are in the log, for the operator.
    assert "out of bounds" in server.log() or "indices" in server.log().lower()
    # And the server still serves: the failure was the request's, not the model's.
    good = {"inputs": [{"name": "index", "datatype": "INT64", "shape": [1], "data": [2]}]}
    answer = httpx.post(f"http://{server.http_url}/v2/models/gather/infer", json=good)
    assert answer.json()["outputs"][0]["data"] == [4.0, 5.0]


def test_no_error_body_names_a_host_path(server: Server) -> None:
    store = str(MODEL_STORE.parent)
    base = f"http://{server.http_url}"
    answers = [
        httpx.get(f"{base}/v2/models/nope"),
        httpx.post(f"{base}/v2/models/wine-onnx/infer", content=b"{bad json"),
        httpx.post(f"{base}/v2/models/gather/infer", json={"inputs": [
            {"name": "index", "datatype": "INT64", "shape": [1], "data": [99]}]}),
    ]  # fmt: skip
    for answer in answers:
        assert answer.status_code >= 400
        assert "error" in answer.json()
        assert store not in answer.text and "/tmp/" not in answer.text, answer.text


@pytest.mark.parametrize("method", ["ModelInfer", "ModelMetadata", "ModelConfig", "ServerLive"])
def test_corrupt_protobuf_is_invalid_argument(server: Server, method: str) -> None:
    """grpc answers undecodable bytes with INTERNAL by itself; they are the client's fault."""
    import grpc

    tracebacks = server.log().count("Traceback")
    with grpc.insecure_channel(server.grpc_url) as channel:
        call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
        with pytest.raises(grpc.RpcError) as failure:
            call(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)  # a length running past the end
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request is not a valid inference." in failure.value.details()
    assert server.log().count("Traceback") == tracebacks
