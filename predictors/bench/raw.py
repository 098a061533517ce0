"""The bare runtime in this process: what the server adds is measured against it.

It is the runtime the server loads (predictors.runtimes, same thread
settings), called directly: so every format the server serves can be
measured, and the difference is the server's own cost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from predictors.runtimes import RuntimeOptions, load_runtime

if TYPE_CHECKING:
    import numpy as np

    from predictors.metadata import ModelMetadata


def raw_runner(
    model_dir: Path, meta: ModelMetadata, threads: int
) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """A callable that runs one request on the bare runtime, set up like the server's."""
    runtime = load_runtime(model_dir, meta, RuntimeOptions(device="cpu", intra_op_threads=threads))
    return runtime.run
