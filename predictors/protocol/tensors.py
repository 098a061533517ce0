"""A decoded V2 inference request, the same whichever protocol it came by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from predictors.errors import InvalidInput
from predictors.protocol.datatypes import V2_TO_NUMPY


@dataclass
class RequestTensor:
    name: str
    datatype: str
    shape: list[int]
    #: flat, in the request's datatype; often a read-only view of the request bytes
    data: np.ndarray


@dataclass
class RequestedOutput:
    name: str
    #: REST only: send this output as binary (None = request default)
    binary: bool | None = None


@dataclass
class InferenceRequest:
    id: str
    inputs: list[RequestTensor]
    outputs: list[RequestedOutput] | None = None
    #: REST only: request-level `binary_data_output` parameter
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


def numpy_dtype(tensor_name: str, datatype: object) -> np.dtype:
    if not isinstance(datatype, str) or datatype.upper() not in V2_TO_NUMPY:
        raise InvalidInput(
            f"input '{tensor_name}': unsupported datatype {datatype!r}; "
            f"expected one of {', '.join(V2_TO_NUMPY)}"
        )
    return V2_TO_NUMPY[datatype.upper()]


def check_shape(tensor_name: str, shape: object) -> list[int]:
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(
            f"input '{tensor_name}': shape must be a list of non-negative integers, got {shape!r}"
        )
    return list(shape)


def from_buffer(tensor_name: str, buffer: bytes | memoryview, dtype: np.dtype) -> np.ndarray:
    """A zero-copy view of little-endian tensor bytes."""
    if len(buffer) % dtype.itemsize:
        raise InvalidInput(
            f"input '{tensor_name}': {len(buffer)} bytes of binary data is not a whole number "
            f"of {dtype.itemsize}-byte {dtype.name} values"
        )
    return np.frombuffer(buffer, dtype=dtype.newbyteorder("<"))


def from_values(tensor_name: str, values: object, datatype: str, dtype: np.dtype) -> np.ndarray:
    """Numbers from JSON (or a protobuf repeated field) as a flat array."""
    try:
        array = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise InvalidInput(
            f"input '{tensor_name}': data is not a rectangular array of numbers ({exc})"
        ) from exc
    kind = array.dtype.kind
    if array.size and kind not in "biuf":
        raise InvalidInput(
            f"input '{tensor_name}': data must be numbers for datatype {datatype}, "
            f"got {_describe_kind(kind)}"
        )
    if dtype.kind == "b" and array.size and kind != "b":
        raise InvalidInput(f"input '{tensor_name}': data must be true/false for datatype BOOL")
    if dtype.kind in "iu" and kind == "f" and not np.all(np.mod(array, 1) == 0):
        raise InvalidInput(
            f"input '{tensor_name}': data must be whole numbers for datatype {datatype}"
        )
    return array.astype(dtype, copy=False).reshape(-1)


def _describe_kind(kind: str) -> str:
    return {"U": "strings", "S": "bytes", "O": "mixed or nested values"}.get(kind, f"kind {kind!r}")
