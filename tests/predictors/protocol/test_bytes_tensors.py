"""BYTES tensors in every wire form, against tritonclient's own (de)serializers.

tritonclient builds the request bodies and messages and reads our responses,
in one process, so the length-prefixed form, JSON strings and gRPC's
bytes_contents are pinned without a server; malformed data gets a message
naming the tensor.
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import _utils as grpc_utils
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from predictors.errors import InvalidInput
from predictors.protocol import bytes_tensors, grpc_codec, rest_codec
from predictors.protocol.grpc_messages import pb
from predictors.protocol.tensors import InferenceRequest, RequestedOutput

WORDS = np.array([[b"a\x00b", b""], [b"\x00", "caf\u00e9".encode()]], dtype=object)


def test_length_prefixed_form_is_tritonclients() -> None:
    ours = bytes_tensors.serialize(WORDS)
    assert ours == serialize_byte_tensor(WORDS).item()
    back = bytes_tensors.deserialize("t", ours)
    assert back.tolist() == WORDS.reshape(-1).tolist()
    assert deserialize_bytes_tensor(ours).tolist() == WORDS.reshape(-1).tolist()
    assert bytes_tensors.serialized_size(WORDS) == len(ours)
    # Text from a runtime (onnxruntime returns str) serializes as UTF-8.
    text = np.array(["a\x00b", "caf\u00e9"], dtype=object)
    assert bytes_tensors.serialize(text) == serialize_byte_tensor(text).item()


def test_truncated_binary_data_names_the_tensor() -> None:
    good = bytes_tensors.serialize(WORDS)
    with pytest.raises(InvalidInput, match="input 'words': BYTES element 0 says 3 bytes"):
        bytes_tensors.deserialize("words", good[:5])
    with pytest.raises(InvalidInput, match="input 'words': BYTES data ends inside"):
        bytes_tensors.deserialize("words", good + b"\x01\x00")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_round_trip_with_tritonclient(binary: bool) -> None:
    words = WORDS if binary else np.array([["a\x00b", ""], ["\x00", "caf\u00e9"]], dtype=object)
    tensor = httpclient.InferInput("words", [2, 2], "BYTES")
    tensor.set_data_from_numpy(words, binary_data=binary)
    body, json_size = httpclient.InferenceServerClient.generate_request_body([tensor])
    request = rest_codec.decode(body, None if json_size is None else str(json_size))
    assert request.inputs[0].datatype == "BYTES"
    assert request.inputs[0].data.tolist() == WORDS.reshape(-1).tolist()

    request.outputs = [RequestedOutput("words", binary)]
    out, json_length = rest_codec.encode("m", "1", request, {"words": WORDS})
    result = httpclient.InferenceServerClient.parse_response_body(out, header_length=json_length)
    got = result.as_numpy("words")
    assert got.shape == (2, 2)
    if binary:
        assert got.tolist() == WORDS.tolist()
    else:  # JSON carries text
        assert [w.encode() for w in got.reshape(-1)] == WORDS.reshape(-1).tolist()


def test_json_cannot_carry_bytes_that_are_not_utf8() -> None:
    request = InferenceRequest("r", [], outputs=[RequestedOutput("raw", False)])
    with pytest.raises(InvalidInput, match="output 'raw' holds bytes that are not UTF-8"):
        rest_codec.encode("m", "1", request, {"raw": np.array([b"\xff"], dtype=object)})
    with pytest.raises(InvalidInput, match="input 'w': data must be strings for datatype BYTES"):
        rest_codec.decode(
            b'{"inputs":[{"name":"w","datatype":"BYTES","shape":[1],"data":[3]}]}', None
        )


def grpc_request(words: np.ndarray) -> pb.ModelInferRequest:
    tensor = grpcclient.InferInput("words", list(words.shape), "BYTES")
    tensor.set_data_from_numpy(words)
    return grpc_utils._get_inference_request(
        "m", [tensor], "", "", None, 0, False, False, 0, None, None
    )


def test_grpc_raw_and_typed_contents() -> None:
    raw = grpc_codec.decode(grpc_request(WORDS))
    assert raw.inputs[0].data.tolist() == WORDS.reshape(-1).tolist()

    typed = pb.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="words", datatype="BYTES", shape=[2, 2])
    tensor.contents.bytes_contents.extend(WORDS.reshape(-1).tolist())
    assert grpc_codec.decode(typed).inputs[0].data.tolist() == WORDS.reshape(-1).tolist()

    response = grpc_codec.encode("m", "1", raw, {"words": WORDS})
    assert grpcclient.InferResult(response).as_numpy("words").tolist() == WORDS.tolist()


def test_text_for_the_runtime_names_a_bad_element() -> None:
    assert bytes_tensors.as_text("w", WORDS).tolist() == [["a\x00b", ""], ["\x00", "caf\u00e9"]]
    with pytest.raises(InvalidInput, match="input 'w': element 1 is not UTF-8 text"):
        bytes_tensors.as_text("w", np.array([b"ok", b"\xc3("], dtype=object))
