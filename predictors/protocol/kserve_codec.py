"""KServe's SDK request and response types (`kserve.InferRequest` / `InferResponse`).

Part of the KServe edge: imported only where KServe's own ModelServer calls
a modelplane model (predictors.serving.kserve_adapter), never by
`modelplane serve`, whose process must not load kserve (see grpc_messages).
"""

from __future__ import annotations

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from predictors.protocol.datatypes import NUMPY_TO_V2
from predictors.protocol.tensors import InferenceRequest, RequestedOutput, RequestTensor


def decode(payload: InferRequest) -> InferenceRequest:
    tensors = [
        RequestTensor(i.name, i.datatype.upper(), list(i.shape), i.as_numpy().reshape(-1))
        for i in payload.inputs
    ]
    outputs = [RequestedOutput(o.name) for o in payload.request_outputs or []] or None
    return InferenceRequest(id=payload.id or "", inputs=tensors, outputs=outputs)


def encode(
    model_name: str, model_version: str, request: InferenceRequest, outputs: dict[str, np.ndarray]
) -> InferResponse:
    infer_outputs = []
    for name, array in outputs.items():
        out = InferOutput(name, list(array.shape), NUMPY_TO_V2[array.dtype])
        out.set_data_from_numpy(array, binary_data=False)
        infer_outputs.append(out)
    return InferResponse(
        response_id=request.id,
        model_name=model_name,
        model_version=model_version,
        infer_outputs=infer_outputs,
    )
