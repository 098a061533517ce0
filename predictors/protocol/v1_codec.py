"""KServe's V1 protocol bodies: `{"instances": [...]}` in, `{"predictions": [...]}` out.

V1 carries no datatypes or shapes: each instance is one row, shaped like the
model's input without its batch axis, so the rows become one batched tensor
of the model's datatype and go through the same validation as V2. A model
with several inputs takes one object per instance, keyed by input name; a
model with several outputs answers one object per row. KServe's own servers
also accept `inputs` in place of `instances` (kserve/utils/utils.py,
get_predict_input), and so does this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from predictors.errors import InvalidInput
from predictors.protocol import tensors
from predictors.protocol.rest_codec import decode_object
from predictors.protocol.tensors import InferenceRequest, RequestTensor


def decode(
    body: bytes, inputs: Sequence[tuple[str, str]], request_id: str = ""
) -> InferenceRequest:
    """`inputs` is the model's (name, V2 datatype) per input, in order."""
    doc = decode_object(body, '{"instances": [...]}')
    key = "instances" if "instances" in doc else "inputs"
    instances = doc.get(key)
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("request must have a non-empty 'instances' list")
    if len(inputs) == 1:
        name, datatype = inputs[0]
        columns = {name: instances}
    else:
        columns = _columns(instances, [name for name, _ in inputs])
    decoded = []
    for name, datatype in inputs:
        decoded.append(_tensor(name, datatype, columns[name]))
    return InferenceRequest(id=request_id, inputs=decoded)


def _columns(instances: list[Any], names: list[str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != set(names):
            raise InvalidInput(
                f"instances[{index}] must be an object with the model's inputs "
                f"{', '.join(names)} (the model has several inputs)"
            )
        for name in names:
            columns[name].append(instance[name])
    return columns


def _tensor(name: str, datatype: str, rows: list[Any]) -> RequestTensor:
    dtype = tensors.numpy_dtype(name, datatype)
    try:
        shape = list(np.shape(rows))
    except ValueError as exc:  # ragged nested lists
        raise InvalidInput(
            f"input '{name}': instances are not a rectangular array of numbers ({exc})"
        ) from exc
    return RequestTensor(name, datatype, shape, tensors.from_values(name, rows, datatype, dtype))


def encode(outputs: dict[str, np.ndarray]) -> bytes:
    if len(outputs) == 1:
        (array,) = outputs.values()
        predictions: Any = array.tolist()
    else:
        columns = {name: array.tolist() for name, array in outputs.items()}
        rows = len(next(iter(columns.values())))
        predictions = [{name: column[i] for name, column in columns.items()} for i in range(rows)]
    return orjson.dumps({"predictions": predictions})
