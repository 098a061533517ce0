"""Runtimes: the one format-specific piece of a predictor.

Everything else (decode, validate, batch, encode, metrics) is shared in
model.py; a runtime only loads a file and turns named numpy arrays into
named numpy arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictors.formats import get_format
from predictors.metadata import ModelMetadata


@dataclass(frozen=True)
class RuntimeOptions:
    # "auto" takes a GPU when the runtime can use one, else the CPU.
    device: str = "auto"
    # 0 = all CPUs this process may use but one (see intra_op_threads).
    intra_op_threads: int = 0
    # ONNX on CUDA only: run in half precision where the graph allows it.
    fp16: bool = False


class Runtime(ABC):
    """A loaded model that runs batches."""

    #: where it runs, e.g. "cpu" or "cuda:0"; shown in model metadata.
    device: str

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Called from worker threads, never on the event loop."""


def load_runtime(path: Path, metadata: ModelMetadata, options: RuntimeOptions) -> Runtime:
    """Load the model file of a version folder with its format's runtime."""
    runtime_class = get_format(metadata.format).load("runtime")
    runtime: Runtime = runtime_class(path / metadata.model_file, metadata, options)
    return runtime


def available_cpus() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def intra_op_threads(requested: int) -> int:
    """Threads for one session: `--threads`, or all CPUs but one.

    The server's event loop (HTTP and gRPC decode/encode, batching) runs in
    this process too and is busy exactly when the model is. Leaving it a core
    means the two run side by side; on a 2-core pod that is one thread for the
    model, which is also what batch-1 requests to small models run fastest on
    (splitting a 50 us op across threads costs more in wake-ups than it saves).
    On a large node the model still gets all the other cores.
    """
    if requested > 0:
        return requested
    return max(1, available_cpus() - 1)
