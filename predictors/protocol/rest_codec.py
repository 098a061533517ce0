"""V2 REST bodies: JSON, and JSON followed by binary tensors (binary data extension).

Binary inputs become numpy views of the request bytes, and numbers in JSON
are converted by numpy in one call, so no Python loop touches tensor elements.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from predictors.errors import InvalidInput
from predictors.protocol import bytes_tensors
from predictors.protocol.datatypes import datatype_of
from predictors.protocol.tensors import (
    NO_DATA,
    InferenceRequest,
    RequestedOutput,
    RequestTensor,
    check_shape,
    from_buffer,
    from_values,
    numpy_dtype,
    shared_memory_ref,
    wire_bytes,
)

HEADER_LENGTH = "inference-header-content-length"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def decode(body: bytes, header_length: str | None, request_id: str = "") -> InferenceRequest:
    """Decode a REST infer body; header_length is the Inference-Header-Content-Length value."""
    json_length = len(body)
    if header_length is not None:
        try:
            json_length = int(header_length)
        except ValueError as exc:
            raise InvalidInput(
                f"Inference-Header-Content-Length must be an integer, got {header_length!r}"
            ) from exc
        if not 0 < json_length <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {json_length} does not fit a body of "
                f"{len(body)} bytes"
            )
    try:
        doc = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("request must have a non-empty 'inputs' list")

    binary = memoryview(body)[json_length:]
    offset = 0
    inputs = []
    for position, item in enumerate(raw_inputs):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"inputs[{position}] must be an object with a 'name' string")
        name = item["name"]
        dtype = numpy_dtype(name, item.get("datatype"))
        datatype = item["datatype"].upper()
        shape = check_shape(name, item.get("shape"))
        parameters = item.get("parameters")
        parameters = {} if parameters is None else parameters
        if not isinstance(parameters, dict):
            raise InvalidInput(f"input '{name}': parameters must be an object")
        shared = shared_memory_ref(f"input '{name}'", parameters)
        if shared is not None:
            if "data" in item or "binary_data_size" in parameters:
                raise InvalidInput(
                    f"input '{name}' is in shared memory; it cannot also have 'data' or "
                    "binary_data_size"
                )
            inputs.append(RequestTensor(name, datatype, shape, NO_DATA, shared))
            continue
        if "binary_data_size" in parameters:
            size = parameters["binary_data_size"]
            if not isinstance(size, int) or size < 0:
                raise InvalidInput(
                    f"input '{name}': binary_data_size must be a non-negative integer"
                )
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(binary) - offset} bytes left)"
                )
            data = from_buffer(name, binary[offset : offset + size], dtype)
            offset += size
        elif "data" in item:
            data = from_values(name, item["data"], datatype, dtype)
        else:
            raise InvalidInput(
                f"input '{name}' has neither 'data' nor a binary_data_size parameter"
            )
        inputs.append(RequestTensor(name, datatype, shape, data))
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes after the JSON header belong to no input "
            "(check binary_data_size and Inference-Header-Content-Length)"
        )

    outputs = None
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise InvalidInput("'outputs' must be a list")
        outputs = [_requested_output(o) for o in doc["outputs"]]
    parameters = doc.get("parameters")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise InvalidInput("request parameters must be an object")
    return InferenceRequest(
        id=str(doc.get("id", request_id)),
        inputs=inputs,
        outputs=outputs,
        binary_output=bool(parameters.get("binary_data_output", False)),
        parameters=parameters,
    )


def _requested_output(raw: Any) -> RequestedOutput:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise InvalidInput("each requested output must be an object with a 'name' string")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput(f"output '{raw['name']}': parameters must be an object")
    binary = parameters.get("binary_data")
    shared = shared_memory_ref(f"output '{raw['name']}'", parameters)
    return RequestedOutput(raw["name"], None if binary is None else bool(binary), shared)


def encode(
    model_name: str,
    model_version: str,
    request: InferenceRequest,
    outputs: dict[str, np.ndarray],
) -> tuple[bytes, int | None]:
    """Response body, and the JSON length when binary outputs follow it."""
    requested = {o.name: o for o in request.outputs or []}
    entries = []
    chunks: list[bytes] = []
    for name, array in outputs.items():
        datatype = datatype_of(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        wanted = requested.get(name)
        if wanted is not None and wanted.shared_memory is not None:
            # Written to the region by the serving layer: name, datatype and
            # shape only. No parameters: Triton's C++ client (perf_analyzer)
            # reads binary_data_size from any output that has them.
            entries.append(entry)
            continue
        wants_binary = wanted.binary if wanted is not None else None
        if wants_binary is None:
            wants_binary = request.binary_output
        if wants_binary:
            chunk = wire_bytes(array)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        elif datatype == bytes_tensors.BYTES:
            entry["data"] = bytes_tensors.to_json(name, array)
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        entries.append(entry)
    doc: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "id": request.id,
        "outputs": entries,
    }
    header = orjson.dumps(doc, option=JSON_OPTIONS)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def decode_object(body: bytes, shape: str = "") -> dict[str, Any]:
    """The JSON object of a request body (an empty body is `{}`); `shape` shows what it
    should look like, for the error."""
    if not body.strip():
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object" + (f": {shape}" if shape else ""))
    return doc
