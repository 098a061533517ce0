"""V2 gRPC messages (`inference.ModelInferRequest` / `ModelInferResponse`) to and from numpy."""

from __future__ import annotations

import numpy as np

from predictors.errors import InvalidInput
from predictors.protocol import tensors
from predictors.protocol.datatypes import NUMPY_TO_V2
from predictors.protocol.grpc_messages import pb
from predictors.protocol.tensors import InferenceRequest, RequestedOutput, RequestTensor

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
}


def decode(request: pb.ModelInferRequest) -> InferenceRequest:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents; "
            "send raw contents for every input or for none"
        )
    if not request.inputs:
        raise InvalidInput("request has no inputs")
    inputs = []
    for index, tensor in enumerate(request.inputs):
        dtype = tensors.numpy_dtype(tensor.name, tensor.datatype)
        datatype = tensor.datatype.upper()
        shape = tensors.check_shape(tensor.name, list(tensor.shape))
        if raw:
            data = tensors.from_buffer(tensor.name, raw[index], dtype)
        elif datatype in CONTENTS_FIELD:
            values = getattr(tensor.contents, CONTENTS_FIELD[datatype])
            data = tensors.from_values(tensor.name, values, datatype, dtype)
        else:
            raise InvalidInput(
                f"input '{tensor.name}': {datatype} data must come in raw_input_contents"
            )
        inputs.append(RequestTensor(tensor.name, datatype, shape, data))
    outputs = [RequestedOutput(o.name) for o in request.outputs] or None
    return InferenceRequest(id=request.id, inputs=inputs, outputs=outputs)


def encode(
    model_name: str, model_version: str, request: InferenceRequest, outputs: dict[str, np.ndarray]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request.id
    )
    for name, array in outputs.items():
        response.outputs.add(name=name, datatype=NUMPY_TO_V2[array.dtype], shape=list(array.shape))
        response.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
    return response
