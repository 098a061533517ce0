"""V2 tensor datatypes and the numpy dtypes they travel as (V2 spec, "Tensor Data Types")."""

from __future__ import annotations

import numpy as np

# BF16 is left out on purpose: numpy has no bfloat16, none of the runtimes
# here takes it from numpy, and refusing it early gives a clear error.
# BYTES (variable-length strings) travel as object arrays of bytes
# (protocol.bytes_tensors).
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2: dict[np.dtype, str] = {v: k for k, v in V2_TO_NUMPY.items()}


def datatype_of(dtype: np.dtype) -> str:
    """The V2 datatype of an output array; numpy's own string dtypes are BYTES too."""
    if dtype.kind in "SU":
        return "BYTES"
    return NUMPY_TO_V2[dtype]
