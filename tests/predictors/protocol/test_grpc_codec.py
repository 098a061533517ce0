"""The gRPC codec against tritonclient's own message code, in one process.

The request is built by the function tritonclient's gRPC client sends with,
the response read by its InferResult: wire compatibility without a server.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import _utils as client_utils

from predictors.errors import InvalidInput
from predictors.protocol import grpc_codec
from predictors.protocol.grpc_messages import pb
from predictors.protocol.tensors import InferenceRequest


def client_request(*arrays: tuple[str, np.ndarray, str]) -> pb.ModelInferRequest:
    inputs = []
    for name, array, datatype in arrays:
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return client_utils._get_inference_request(
        model_name="m",
        inputs=inputs,
        model_version="",
        request_id="r9",
        outputs=None,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters=None,
    )


def test_decodes_what_tritonclient_sends() -> None:
    x = np.arange(8, dtype=np.float16).reshape(2, 4)
    flags = np.array([[True], [False]])
    request = grpc_codec.decode(client_request(("x", x, "FP16"), ("flags", flags, "BOOL")))
    assert request.id == "r9"
    np.testing.assert_array_equal(request.inputs[0].data.reshape(2, 4), x)
    np.testing.assert_array_equal(request.inputs[1].data.reshape(2, 1), flags)


def test_tritonclient_reads_what_we_encode() -> None:
    probabilities = np.array([[0.5, 0.5]], dtype=np.float32)
    response = grpc_codec.encode(
        "m", "2", InferenceRequest("r1", []), {"probabilities": probabilities}
    )
    result = grpcclient.InferResult(response)
    assert result.get_response().model_version == "2"
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)


def test_typed_contents_decode_like_raw_contents() -> None:
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype="INT32", shape=[1, 3])
    tensor.contents.int_contents.extend([1, 2, 3])
    request = grpc_codec.decode(message)
    np.testing.assert_array_equal(request.inputs[0].data, np.array([1, 2, 3], np.int32))


def test_malformed_requests_name_the_problem() -> None:
    empty = pb.ModelInferRequest(model_name="m")
    with pytest.raises(InvalidInput, match="request has no inputs"):
        grpc_codec.decode(empty)

    mismatch = client_request(("x", np.ones((1, 2), np.float32), "FP32"))
    mismatch.raw_input_contents.append(b"\0\0\0\0")
    with pytest.raises(InvalidInput, match="1 inputs but 2 raw_input_contents"):
        grpc_codec.decode(mismatch)

    typed_fp16 = pb.ModelInferRequest(model_name="m")
    typed_fp16.inputs.add(name="x", datatype="FP16", shape=[1])
    with pytest.raises(InvalidInput, match="input 'x': FP16 data must come in raw_input_contents"):
        grpc_codec.decode(typed_fp16)

    odd_bytes = client_request(("x", np.ones((1, 2), np.float32), "FP32"))
    odd_bytes.raw_input_contents[0] = b"\0" * 7
    with pytest.raises(InvalidInput, match="7 bytes of binary data is not a whole number"):
        grpc_codec.decode(odd_bytes)
