"""The bare runtime in this process: what the server adds is measured against it.

ONNX models run on an onnxruntime InferenceSession with default options:
what a user who runs the model in their own process gets (every physical
core, spinning threads), and the in-process reference of issue 15's table.
Torch models run on modelplane's own Torch runtime (torch's defaults are the
same thread count; the runtime adds inference mode and the tensor
conversions every caller needs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from predictors.runtimes import RuntimeOptions, load_runtime

if TYPE_CHECKING:
    import numpy as np

    from predictors.metadata import ModelMetadata

Runner = Callable[[dict[str, "np.ndarray"]], object]


def raw_runner(model_dir: Path, meta: ModelMetadata, threads: int) -> Runner:
    """A callable that runs one request on the bare runtime in this process."""
    if meta.format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(
            str(model_dir / meta.model_file), providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in meta.outputs]
        return lambda inputs: session.run(names, inputs)
    options = RuntimeOptions(device="cpu", intra_op_threads=threads)
    return load_runtime(model_dir, meta, options).run
