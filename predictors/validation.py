"""Check a decoded request against the model's metadata before anything runs.

Every message names the tensor and says what was expected, so a client can
fix its request from the error alone.
"""

from __future__ import annotations

import math

import numpy as np

from predictors.errors import InvalidInput
from predictors.metadata import ModelMetadata, TensorSpec
from predictors.protocol import bytes_tensors
from predictors.protocol.tensors import InferenceRequest


def _fmt(shape: list[int] | tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _describe(spec: TensorSpec) -> str:
    return f"'{spec.name}' ({spec.datatype} {_fmt(spec.shape)})"


def validate(request: InferenceRequest, meta: ModelMetadata) -> tuple[dict[str, np.ndarray], int]:
    """Return the inputs as shaped arrays in model order, and the batch size.

    BYTES inputs come back as UTF-8 text (object arrays of str): the runtime
    that takes strings (onnxruntime) wants that, and a bad element is named
    here, per request, rather than failing a whole batch later.
    """
    expected = {spec.name: spec for spec in meta.inputs}
    given: dict[str, np.ndarray] = {}
    batch_sizes: dict[str, int] = {}
    for tensor in request.inputs:
        if tensor.name in given:
            raise InvalidInput(f"input '{tensor.name}' is given more than once")
        spec = expected.get(tensor.name)
        if spec is None:
            raise InvalidInput(
                f"unexpected input '{tensor.name}': model {meta.name} takes "
                + ", ".join(_describe(s) for s in meta.inputs)
            )
        if tensor.datatype != spec.datatype:
            raise InvalidInput(
                f"input '{tensor.name}': datatype {tensor.datatype} does not match the "
                f"model's {spec.datatype}"
            )
        shape = tensor.shape
        if len(shape) != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
        ):
            raise InvalidInput(
                f"input '{tensor.name}': shape {_fmt(shape)} does not match the model's "
                f"{_fmt(spec.shape)} (-1 is any size)"
            )
        count = math.prod(shape)
        if tensor.data.size != count:
            raise InvalidInput(
                f"input '{tensor.name}': shape {_fmt(shape)} needs {count} values, "
                f"got {tensor.data.size}"
            )
        data = tensor.data
        if spec.datatype == bytes_tensors.BYTES:
            data = bytes_tensors.as_text(tensor.name, data)
        given[tensor.name] = data.reshape(shape)
        if spec.batched:
            batch_sizes[tensor.name] = shape[0]

    missing = [s for s in meta.inputs if s.name not in given]
    if missing:
        raise InvalidInput("missing input " + ", ".join(_describe(s) for s in missing))

    batch = 1
    if batch_sizes:
        sizes = set(batch_sizes.values())
        if len(sizes) > 1:
            raise InvalidInput(
                "inputs disagree on the batch size: "
                + ", ".join(f"'{n}' has {b}" for n, b in batch_sizes.items())
            )
        batch = sizes.pop()
        name = next(iter(batch_sizes))
        if batch < 1:
            raise InvalidInput(f"input '{name}': batch size must be at least 1")
        if batch > meta.max_batch_size:
            raise InvalidInput(
                f"input '{name}': batch size {batch} is over the model's max_batch_size "
                f"{meta.max_batch_size}"
            )

    if request.outputs:
        known = {s.name for s in meta.outputs}
        for output in request.outputs:
            if output.name not in known:
                raise InvalidInput(
                    f"requested output '{output.name}' is not an output of model {meta.name}; "
                    f"outputs: {', '.join(sorted(known))}"
                )
    return {s.name: given[s.name] for s in meta.inputs}, batch
