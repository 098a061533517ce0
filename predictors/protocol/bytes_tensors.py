"""BYTES tensors: V2's variable-length strings, in each of their wire forms.

A BYTES tensor travels as numpy object arrays of `bytes` through decoding,
validation and batching (numpy's fixed-width `S` dtype would drop trailing
NUL bytes). On the wire it is:

- JSON: a (nested) list of strings, UTF-8;
- binary (the REST binary extension, gRPC `raw_input_contents` and
  `raw_output_contents`, shared memory): each element as a 4-byte
  little-endian length followed by that many bytes;
- gRPC typed contents: `bytes_contents`, one entry per element.

The runtimes here that take strings (onnxruntime) want Python `str`, so
`as_text` turns a request's bytes into UTF-8 text once, per request, where a
bad element can be named; what a runtime returns may hold `str` or `bytes`,
and every encoder here takes either.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from predictors.errors import InvalidInput

BYTES = "BYTES"
OBJECT = np.dtype(object)
_LENGTH = struct.Struct("<I")


def is_bytes_dtype(dtype: np.dtype) -> bool:
    """Object arrays (of str or bytes) and numpy's own string dtypes are BYTES."""
    return dtype.kind in "OSU"


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, np.bytes_ | np.str_):
        return _as_bytes(value.item())
    raise TypeError(f"a BYTES element must be str or bytes, not {type(value).__name__}")


def elements(array: np.ndarray) -> list[bytes]:
    """Every element, row-major, as bytes (gRPC `bytes_contents`)."""
    return [_as_bytes(v) for v in array.reshape(-1).tolist()]


def serialize(array: np.ndarray) -> bytes:
    """The length-prefixed binary form."""
    parts = []
    for value in elements(array):
        parts.append(_LENGTH.pack(len(value)))
        parts.append(value)
    return b"".join(parts)


def serialized_size(array: np.ndarray) -> int:
    return sum(_LENGTH.size + len(v) for v in elements(array))


def deserialize(tensor_name: str, buffer: bytes | memoryview) -> np.ndarray:
    """Length-prefixed elements back into a flat object array of bytes."""
    view = memoryview(buffer).cast("B")
    values: list[bytes] = []
    offset, end = 0, len(view)
    while offset < end:
        if end - offset < _LENGTH.size:
            raise InvalidInput(
                f"input '{tensor_name}': BYTES data ends inside an element's 4-byte length "
                f"(element {len(values)}, {end - offset} bytes left)"
            )
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if length > end - offset:
            raise InvalidInput(
                f"input '{tensor_name}': BYTES element {len(values)} says {length} bytes but "
                f"only {end - offset} are left"
            )
        values.append(bytes(view[offset : offset + length]))
        offset += length
    return _object_array(values)


def from_json(tensor_name: str, values: object) -> np.ndarray:
    """JSON strings (nested lists allowed) as a flat object array of UTF-8 bytes."""
    flat: list[bytes] = []
    for value in _flatten(values):
        if not isinstance(value, str):
            raise InvalidInput(
                f"input '{tensor_name}': data must be strings for datatype BYTES, "
                f"got {type(value).__name__}"
            )
        flat.append(value.encode("utf-8"))
    return _object_array(flat)


def from_elements(values: Iterable[bytes]) -> np.ndarray:
    """gRPC `bytes_contents` as a flat object array."""
    return _object_array(list(values))


def to_json(tensor_name: str, array: np.ndarray) -> list[str]:
    """Elements as JSON strings; bytes that are not UTF-8 cannot be JSON."""
    out = []
    for value in array.reshape(-1).tolist():
        if isinstance(value, str):
            out.append(value)
            continue
        try:
            out.append(_as_bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(
                f"output '{tensor_name}' holds bytes that are not UTF-8 text, which JSON "
                "cannot carry; request it as binary data (binary_data: true)"
            ) from None
    return out


def as_text(tensor_name: str, array: np.ndarray) -> np.ndarray:
    """Request bytes as str elements, the form onnxruntime takes string tensors in."""
    text = np.empty(array.shape, dtype=OBJECT)
    flat = text.reshape(-1)
    for index, value in enumerate(array.reshape(-1).tolist()):
        if isinstance(value, str):
            flat[index] = value
            continue
        try:
            flat[index] = _as_bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"input '{tensor_name}': element {index} is not UTF-8 text ({exc.reason} at "
                f"byte {exc.start}); the model's string tensors hold text"
            ) from None
    return text


def _flatten(values: object) -> Iterable[object]:
    if isinstance(values, list | tuple):
        for value in values:
            yield from _flatten(value)
    else:
        yield values


def _object_array(values: list[bytes]) -> np.ndarray:
    # np.array(list_of_bytes, dtype=object) would still be right, but an
    # explicit fill never lets numpy guess a fixed-width or nested dtype.
    array = np.empty(len(values), dtype=OBJECT)
    array[:] = values
    return array
