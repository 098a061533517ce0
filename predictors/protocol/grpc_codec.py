"""V2 gRPC messages (`inference.ModelInferRequest` / `ModelInferResponse`) to and from numpy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from predictors.errors import InvalidInput
from predictors.protocol import bytes_tensors, tensors
from predictors.protocol.datatypes import datatype_of
from predictors.protocol.grpc_messages import pb
from predictors.protocol.tensors import (
    NO_DATA,
    InferenceRequest,
    RequestedOutput,
    RequestTensor,
    SharedMemoryRef,
    shared_memory_ref,
)

# Which InferTensorContents field carries each datatype (V2 gRPC spec).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameter_values(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A map<string, InferParameter> as plain Python values."""
    values = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            values[key] = getattr(parameter, choice)
    return values


def _shared_memory(kind: str, tensor: Any) -> SharedMemoryRef | None:
    if not tensor.parameters:
        return None
    return shared_memory_ref(f"{kind} '{tensor.name}'", parameter_values(tensor.parameters))


def decode(request: pb.ModelInferRequest) -> InferenceRequest:
    if not request.inputs:
        raise InvalidInput("request has no inputs")
    shared = [_shared_memory("input", t) for t in request.inputs]
    raw = request.raw_input_contents
    # Inputs in shared memory have no raw contents (tritonclient sends none).
    in_message = sum(1 for s in shared if s is None)
    if raw and len(raw) != in_message:
        raise InvalidInput(
            f"{in_message} inputs but {len(raw)} raw_input_contents; send raw contents for "
            "every input (but those in shared memory) or for none"
        )
    inputs = []
    next_raw = 0
    for tensor, in_shm in zip(request.inputs, shared, strict=True):
        dtype = tensors.numpy_dtype(tensor.name, tensor.datatype)
        datatype = tensor.datatype.upper()
        shape = tensors.check_shape(tensor.name, list(tensor.shape))
        if in_shm is not None:
            if tensor.HasField("contents"):
                raise InvalidInput(
                    f"input '{tensor.name}' is in shared memory; it cannot also have contents"
                )
            inputs.append(RequestTensor(tensor.name, datatype, shape, NO_DATA, in_shm))
            continue
        if raw:
            data = tensors.from_buffer(tensor.name, raw[next_raw], dtype)
            next_raw += 1
        elif datatype == bytes_tensors.BYTES:
            data = bytes_tensors.from_elements(tensor.contents.bytes_contents)
        elif datatype in CONTENTS_FIELD:
            values = getattr(tensor.contents, CONTENTS_FIELD[datatype])
            data = tensors.from_values(tensor.name, values, datatype, dtype)
        else:
            raise InvalidInput(
                f"input '{tensor.name}': {datatype} data must come in raw_input_contents"
            )
        inputs.append(RequestTensor(tensor.name, datatype, shape, data))
    outputs = [
        RequestedOutput(o.name, shared_memory=_shared_memory("output", o)) for o in request.outputs
    ] or None
    return InferenceRequest(
        id=request.id,
        inputs=inputs,
        outputs=outputs,
        parameters=parameter_values(request.parameters),
    )


def encode(
    model_name: str, model_version: str, request: InferenceRequest, outputs: dict[str, np.ndarray]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request.id
    )
    in_shm = {o.name: o.shared_memory for o in request.outputs or [] if o.shared_memory}
    for name, array in outputs.items():
        tensor = response.outputs.add(
            name=name, datatype=datatype_of(array.dtype), shape=array.shape
        )
        ref = in_shm.get(name)
        if ref is None:
            response.raw_output_contents.append(tensors.wire_bytes(array))
            continue
        # Written to the region by the serving layer. Clients read
        # raw_output_contents[i] for outputs[i] (Triton's C++ client for every
        # output, unchecked), so the entry stays, empty.
        response.raw_output_contents.append(b"")
        tensor.parameters["shared_memory_region"].string_param = ref.region
        tensor.parameters["shared_memory_byte_size"].int64_param = tensors.wire_size(array)
        tensor.parameters["shared_memory_offset"].int64_param = ref.offset
    return response
