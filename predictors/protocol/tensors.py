"""A decoded V2 inference request, the same whichever protocol it came by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from predictors.errors import InvalidInput
from predictors.protocol import bytes_tensors
from predictors.protocol.datatypes import V2_TO_NUMPY

#: the data of an input whose bytes are still in shared memory (see shared_memory)
NO_DATA = np.empty(0, dtype=np.uint8)


@dataclass(frozen=True)
class SharedMemoryRef:
    """Where a tensor's bytes are in a registered shared-memory region (Triton's extension)."""

    region: str
    byte_size: int
    offset: int = 0


@dataclass
class RequestTensor:
    name: str
    datatype: str
    shape: list[int]
    #: flat, in the request's datatype; often a read-only view of the request bytes
    data: np.ndarray
    #: set when the data is in shared memory: `data` is NO_DATA until the serving
    #: layer reads the region (predictors.serving.shared_memory)
    shared_memory: SharedMemoryRef | None = None


@dataclass
class RequestedOutput:
    name: str
    #: REST only: send this output as binary (None = request default)
    binary: bool | None = None
    #: write this output into a shared-memory region instead of the response
    shared_memory: SharedMemoryRef | None = None


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
    """A zero-copy view of little-endian tensor bytes (BYTES: its length-prefixed elements)."""
    if dtype == bytes_tensors.OBJECT:
        return bytes_tensors.deserialize(tensor_name, buffer)
    if len(buffer) % dtype.itemsize:
        raise InvalidInput(
            f"input '{tensor_name}': {len(buffer)} bytes of binary data is not a whole number "
            f"of {dtype.itemsize}-byte {dtype.name} values"
        )
    return np.frombuffer(buffer, dtype=dtype.newbyteorder("<"))


def from_values(tensor_name: str, values: object, datatype: str, dtype: np.dtype) -> np.ndarray:
    """Numbers from JSON (or a protobuf repeated field) as a flat array; BYTES: strings."""
    if datatype == bytes_tensors.BYTES:
        return bytes_tensors.from_json(tensor_name, values)
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


def shared_memory_ref(owner: str, parameters: Mapping[str, object]) -> SharedMemoryRef | None:
    """The shared-memory parameters of a tensor, checked; None when it has none.

    `owner` names the tensor in errors, e.g. "input 'x'".
    """
    region = parameters.get("shared_memory_region")
    size = parameters.get("shared_memory_byte_size")
    offset = parameters.get("shared_memory_offset", 0)
    if region is None and size is None:
        if "shared_memory_offset" in parameters:
            raise InvalidInput(
                f"{owner}: shared_memory_offset needs shared_memory_region and "
                "shared_memory_byte_size"
            )
        return None
    if region is None or size is None:
        raise InvalidInput(
            f"{owner}: shared_memory_region and shared_memory_byte_size go together; "
            f"got only {'shared_memory_region' if size is None else 'shared_memory_byte_size'}"
        )
    if not isinstance(region, str) or not region:
        raise InvalidInput(f"{owner}: shared_memory_region must be a region name")
    for key, value in (("shared_memory_byte_size", size), ("shared_memory_offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"{owner}: {key} must be a non-negative integer, got {value!r}")
    assert isinstance(size, int) and isinstance(offset, int)
    return SharedMemoryRef(region, size, offset)


def wire_bytes(array: np.ndarray) -> bytes:
    """An output's binary form: little-endian values, or BYTES' length-prefixed elements."""
    if bytes_tensors.is_bytes_dtype(array.dtype):
        return bytes_tensors.serialize(array)
    contiguous = np.ascontiguousarray(array)
    return contiguous.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def wire_size(array: np.ndarray) -> int:
    """len(wire_bytes(array)), without building it."""
    if bytes_tensors.is_bytes_dtype(array.dtype):
        return bytes_tensors.serialized_size(array)
    return array.nbytes
