"""Fuzzing a live server: whatever the bytes, a 4xx (or a 200), never a 5xx or INTERNAL.

Bounded and repeatable, so CI runs the same cases every time: hypothesis
(derandomized) generates V2 request documents with wrong types, shapes and
sizes and gRPC messages with wrong fields; a seeded mutator flips, cuts and
inserts bytes of valid HTTP bodies and serialized gRPC messages by the
thousand (hypothesis' own generation costs more than a request here). Every
answer is checked; the server must still be up at the end. 10,100 requests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predictors.protocol.grpc_messages import pb
from tests.support import MODEL_STORE, Server, start_server

EXAMPLES = 500  # per hypothesis test (the document test sends two requests each)
MUTATIONS = 4300  # per seeded mutation test: 1,000 + 4,300 + 4,300 + 500 requests in all
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODELS = ["wine-onnx", "digits-onnx", "nope"]
DATATYPES = ["FP32", "FP16", "INT64", "INT8", "BOOL", "BYTES", "UINT8", "fp32", "BF16", "", "X"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        MODEL_STORE, tmp_path_factory.mktemp("fuzz"), "--models", "wine-onnx,digits-onnx"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{server.http_url}", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_url) as channel:
        yield channel


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
shapes = st.lists(st.integers(-3, 40), max_size=4) | json_values
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["features", "image", "x", ""]) | json_values,
        "datatype": st.sampled_from(DATATYPES) | json_values,
        "shape": shapes,
    },
    optional={
        "data": st.lists(st.floats(allow_nan=True) | st.integers(-300, 300), max_size=80)
        | json_values,
        "parameters": st.dictionaries(
            st.sampled_from(["binary_data_size", "shared_memory_region", "x"]),
            json_values,
            max_size=2,
        )
        | json_values,
    },
)
documents = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3) | json_values},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": json_values}), max_size=2) | json_values,
        "parameters": json_values,
        "id": json_values,
    },
)


def valid_body(rows: int) -> bytes:
    data = np.linspace(0, 1, rows * 13).tolist()
    doc = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [rows, 13], "data": data}]}
    return json.dumps(doc).encode()


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, position, chunk in edits:
        if not out:
            out.extend(chunk)
            continue
        at = position % len(out)
        if kind == 0:  # flip
            out[at] ^= 0xFF
        elif kind == 1:  # cut
            del out[at : at + len(chunk) + 1]
        else:  # insert
            out[at:at] = chunk
    return bytes(out)


def check_http(answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    # Answers from the app are V2 error bodies; uvicorn refuses malformed HTTP
    # itself, before the app, in plain text (still a 400).
    if answer.status_code >= 400 and "json" in answer.headers.get("content-type", ""):
        assert "error" in answer.json(), answer.text[:300]


@FUZZ
@given(doc=documents)
def test_fuzzed_documents(http: httpx.Client, doc: dict) -> None:
    body = json.dumps(doc).encode()
    for model in ("wine-onnx", "digits-onnx"):
        check_http(http.post(f"/v2/models/{model}/infer", content=body))


def random_edits(rng: random.Random) -> list[tuple[int, int, bytes]]:
    return [
        (rng.randrange(3), rng.randrange(10_000), rng.randbytes(rng.randint(1, 8)))
        for _ in range(rng.randint(1, 6))
    ]


def test_mutated_http_bodies(http: httpx.Client) -> None:
    rng = random.Random(20261201)
    for _ in range(MUTATIONS):
        body = mutate(valid_body(rng.randint(1, 4)), random_edits(rng))
        headers = {}
        if rng.random() < 0.3:
            headers["Inference-Header-Content-Length"] = str(rng.randint(-5, len(body) + 5))
        path = (
            "/v1/models/wine-onnx:predict" if rng.random() < 0.2 else "/v2/models/wine-onnx/infer"
        )
        check_http(http.post(path, content=body, headers=headers))


def grpc_request(rows: int) -> bytes:
    request = pb.ModelInferRequest(model_name="wine-onnx")
    request.inputs.add(name="features", datatype="FP32", shape=[rows, 13])
    request.raw_input_contents.append(np.ones((rows, 13), np.float32).tobytes())
    return request.SerializeToString()


def check_grpc(channel: grpc.Channel, method: str, payload: bytes) -> None:
    call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
    try:
        call(payload, timeout=30)
    except grpc.RpcError as error:
        assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
            error.code(),
            error.details(),
        )


def test_mutated_grpc_messages(channel: grpc.Channel) -> None:
    rng = random.Random(20261202)
    for _ in range(MUTATIONS):
        check_grpc(
            channel, "ModelInfer", mutate(grpc_request(rng.randint(1, 4)), random_edits(rng))
        )


@FUZZ
@given(
    model=st.sampled_from(MODELS) | st.text(max_size=10),
    name=st.sampled_from(["features", "image"]) | st.text(max_size=6),
    datatype=st.sampled_from(DATATYPES),
    shape=st.lists(st.integers(-2, 2**40), max_size=4),
    raw=st.lists(st.binary(max_size=80), max_size=3),
    floats=st.lists(st.floats(width=32), max_size=30),
    method=st.sampled_from(["ModelInfer", "ModelMetadata", "ModelReady", "ModelConfig"]),
)
def test_generated_grpc_messages(
    channel: grpc.Channel,
    model: str,
    name: str,
    datatype: str,
    shape: list[int],
    raw: list[bytes],
    floats: list[float],
    method: str,
) -> None:
    if method == "ModelInfer":
        request = pb.ModelInferRequest(model_name=model)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        tensor.contents.fp32_contents.extend(floats)
        request.raw_input_contents.extend(raw)
    elif method == "ModelConfig":
        request = pb.ModelConfigRequest(name=model)
    elif method == "ModelMetadata":
        request = pb.ModelMetadataRequest(name=model)
    else:
        request = pb.ModelReadyRequest(name=model)
    check_grpc(channel, method, request.SerializeToString())


def test_the_server_is_still_up(server: Server, http: httpx.Client) -> None:
    """Runs after the fuzz tests (file order): alive, ready, and still right."""
    assert server.process.poll() is None
    assert http.get("/v2/health/ready").status_code == 200
    answer = http.post("/v2/models/wine-onnx/infer", content=valid_body(1))
    assert answer.status_code == 200
