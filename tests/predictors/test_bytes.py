"""BYTES (string) tensors end to end: store add, serving, every client form.

An ONNX graph on string tensors, built here with onnx.helper, goes in with
`modelplane store add` (which must derive BYTES from the graph) and is
served; tritonclient sends strings with embedded NUL bytes as JSON, as the
binary extension and over gRPC (raw contents; typed bytes_contents through a
raw stub), and reads them back unchanged.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.support import MODELPLANE, Server, save_onnx, start_server

WORDS = np.array([[b"hello", b"a\x00b"], [b"\x00\x00", "na\u00efve".encode()]], dtype=object)


def string_model(path: Path) -> Path:
    """`same` = `text` (strings), and `lengths` counts nothing but proves mixed outputs."""
    text = helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 2])
    same = helper.make_tensor_value_info("same", TensorProto.STRING, ["batch", 2])
    shape = helper.make_tensor_value_info("dims", TensorProto.INT64, [2])
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["text"], ["same"]),
            helper.make_node("Shape", ["text"], ["dims"]),
        ],
        "strings",
        [text],
        [same, shape],
    )
    return save_onnx(graph, path)


@pytest.fixture(scope="module")
def string_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bytes")
    store = root / "store"
    added = subprocess.run(
        [MODELPLANE, "store", "add", "--store", str(store), "--name", "echo_strings.v1",
         str(string_model(root / "strings.onnx"))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    server = start_server(store, root)
    try:
        yield server
    finally:
        server.stop()


def test_store_add_derives_bytes_from_the_graph(string_server: Server) -> None:
    meta = httpclient.InferenceServerClient(string_server.http_url).get_model_metadata(
        "echo_strings.v1"
    )
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 2]}]
    assert meta["outputs"][0] == {"name": "same", "datatype": "BYTES", "shape": [-1, 2]}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_round_trip_keeps_nul_bytes(string_server: Server, binary: bool) -> None:
    client = httpclient.InferenceServerClient(string_server.http_url)
    tensor = httpclient.InferInput("text", [2, 2], "BYTES")
    tensor.set_data_from_numpy(WORDS, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("same", binary_data=binary),
        httpclient.InferRequestedOutput("dims", binary_data=binary),
    ]
    result = client.infer("echo_strings.v1", [tensor], outputs=outputs)
    got = result.as_numpy("same")
    if not binary:  # JSON strings come back as str
        got = np.vectorize(lambda s: s.encode(), otypes=[object])(got)
    assert got.tolist() == WORDS.tolist()
    assert result.as_numpy("dims").tolist() == [2, 2]


def test_grpc_round_trip_raw_and_typed(string_server: Server) -> None:
    client = grpcclient.InferenceServerClient(string_server.grpc_url)
    tensor = grpcclient.InferInput("text", [2, 2], "BYTES")
    tensor.set_data_from_numpy(WORDS)
    assert client.infer("echo_strings.v1", [tensor]).as_numpy("same").tolist() == WORDS.tolist()

    # Typed contents, as other V2 clients send BYTES.
    request = service_pb2.ModelInferRequest(model_name="echo_strings.v1")
    typed = request.inputs.add(name="text", datatype="BYTES", shape=[2, 2])
    typed.contents.bytes_contents.extend(WORDS.reshape(-1).tolist())
    with grpc.insecure_channel(string_server.grpc_url) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert grpcclient.InferResult(response).as_numpy("same").tolist() == WORDS.tolist()


def test_bad_strings_get_400_naming_the_tensor(string_server: Server) -> None:
    url = f"http://{string_server.http_url}/v2/models/echo_strings.v1/infer"
    not_text = httpx.post(
        url,
        content=json.dumps(
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": [1, 2]}]}
        ),
    )
    assert not_text.status_code == 400
    assert "input 'text': data must be strings" in not_text.json()["error"]

    client = httpclient.InferenceServerClient(string_server.http_url)
    tensor = httpclient.InferInput("text", [1, 2], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"ok", b"\xff\xfe"]], dtype=object))
    with pytest.raises(InferenceServerException, match="input 'text': element 1 is not UTF-8"):
        client.infer("echo_strings.v1", [tensor])
    # ...and the server keeps serving.
    good = httpclient.InferInput("text", [1, 2], "BYTES")
    good.set_data_from_numpy(WORDS[:1])
    assert client.infer("echo_strings.v1", [good]).as_numpy("same").tolist() == WORDS[:1].tolist()
