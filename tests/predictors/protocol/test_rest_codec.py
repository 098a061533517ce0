"""The REST codec against tritonclient's own request and response code, in one process.

tritonclient builds the bodies (`generate_request_body`, what its HTTP client
sends) and parses ours (`parse_response_body`, what its HTTP client reads),
so these pin wire compatibility without a server; the error cases pin every
message a malformed body gets.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

from predictors.errors import InvalidInput
from predictors.protocol import rest_codec
from predictors.protocol.tensors import InferenceRequest, RequestedOutput


def client_body(*arrays: tuple[str, np.ndarray], binary: bool) -> tuple[bytes, str | None]:
    inputs = []
    for name, array in arrays:
        tensor = httpclient.InferInput(
            name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64"
        )
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs, request_id="r7"
    )
    return body, None if json_size is None else str(json_size)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_decodes_what_tritonclient_sends(binary: bool) -> None:
    x = np.arange(26, dtype=np.float32).reshape(2, 13)
    ids = np.array([[3], [4]], dtype=np.int64)
    body, header_length = client_body(("features", x), ("ids", ids), binary=binary)
    request = rest_codec.decode(body, header_length)
    assert request.id == "r7"
    assert [t.name for t in request.inputs] == ["features", "ids"]
    np.testing.assert_array_equal(request.inputs[0].data.reshape(2, 13), x)
    np.testing.assert_array_equal(request.inputs[1].data.reshape(2, 1), ids)
    assert request.inputs[0].shape == [2, 13]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_reads_what_we_encode(binary: bool) -> None:
    request = InferenceRequest(
        id="r1", inputs=[], outputs=[RequestedOutput("probabilities", binary)]
    )
    probabilities = np.array([[0.25, 0.75]], dtype=np.float32)
    body, json_length = rest_codec.encode("wine", "3", request, {"probabilities": probabilities})
    assert (json_length is not None) == binary
    result = httpclient.InferenceServerClient.parse_response_body(body, header_length=json_length)
    assert result.get_response()["model_version"] == "3"
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)


def test_binary_inputs_are_views_of_the_body() -> None:
    x = np.ones((1, 13), dtype=np.float32)
    body, header_length = client_body(("features", x), binary=True)
    request = rest_codec.decode(body, header_length)
    assert not request.inputs[0].data.flags.owndata  # no copy of the tensor bytes


def json_body(doc: object) -> bytes:
    return orjson.dumps(doc)


GOOD_INPUT = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}

BAD_BODIES = [
    (b"not json", None, "request body is not valid JSON"),
    (json_body([1, 2]), None, "request body must be a JSON object with an 'inputs' list"),
    (json_body({"inputs": []}), None, "request must have a non-empty 'inputs' list"),
    (json_body({"inputs": [3]}), None, "inputs[0] must be an object with a 'name' string"),
    (
        json_body({"inputs": [{**GOOD_INPUT, "datatype": "FP8"}]}),
        None,
        "input 'x': unsupported datatype 'FP8'",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "shape": [1, -2]}]}),
        None,
        "input 'x': shape must be a list of non-negative integers, got [1, -2]",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "parameters": [1]}]}),
        None,
        "input 'x': parameters must be an object",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "parameters": []}]}),
        None,
        "input 'x': parameters must be an object",
    ),
    (
        json_body({"inputs": [{k: v for k, v in GOOD_INPUT.items() if k != "data"}]}),
        None,
        "input 'x' has neither 'data' nor a binary_data_size parameter",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "data": [1, [2, 3]]}]}),
        None,
        "input 'x': data is not a rectangular array of numbers",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "data": ["a", "b"]}]}),
        None,
        "input 'x': data must be numbers for datatype FP32, got strings",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "datatype": "INT32", "data": [1.5, 2]}]}),
        None,
        "input 'x': data must be whole numbers for datatype INT32",
    ),
    (
        json_body({"inputs": [{**GOOD_INPUT, "datatype": "BOOL", "data": [1, 0]}]}),
        None,
        "input 'x': data must be true/false for datatype BOOL",
    ),
    (json_body({"inputs": [GOOD_INPUT], "outputs": {}}), None, "'outputs' must be a list"),
    (
        json_body({"inputs": [GOOD_INPUT], "outputs": [{"id": 1}]}),
        None,
        "each requested output must be an object with a 'name' string",
    ),
    (
        json_body({"inputs": [GOOD_INPUT], "parameters": []}),
        None,
        "request parameters must be an object",
    ),
    (json_body({"inputs": [GOOD_INPUT]}), "twelve", "Inference-Header-Content-Length must be"),
    (json_body({"inputs": [GOOD_INPUT]}), "100000", "does not fit a body of"),
]


def binary_body(size: object, extra: bytes) -> tuple[bytes, str]:
    header = json_body(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )
    return header + extra, str(len(header))


@pytest.mark.parametrize(("body", "header_length", "message"), BAD_BODIES)
def test_malformed_json_bodies_name_the_problem(
    body: bytes, header_length: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        rest_codec.decode(body, header_length)


@pytest.mark.parametrize(
    ("size", "extra", "message"),
    [
        (-1, b"", "input 'x': binary_data_size must be a non-negative integer"),
        ("8", b"", "input 'x': binary_data_size must be a non-negative integer"),
        (16, b"\0" * 8, "input 'x': binary_data_size 16 runs past the end of the body"),
        (7, b"\0" * 7, "input 'x': 7 bytes of binary data is not a whole number of 4-byte"),
        (8, b"\0" * 12, "4 bytes after the JSON header belong to no input"),
    ],
)
def test_malformed_binary_bodies_name_the_problem(size: object, extra: bytes, message: str) -> None:
    body, header_length = binary_body(size, extra)
    with pytest.raises(InvalidInput, match=message):
        rest_codec.decode(body, header_length)
