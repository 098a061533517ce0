"""A modelplane model is a kserve.Model: KServe's own DataPlane serves it unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import MODEL_STORE

# KServe's protobufs clash with tritonclient's (both define `inference.*`),
# so this runs in a process of its own.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import numpy as np
    from pathlib import Path
    from kserve import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferInput, InferRequest
    from predictors.model import ModelplaneModel
    from predictors.model_store import discover

    stored = discover(Path(sys.argv[1]), ["wine-torch"])[0]
    model = ModelplaneModel(stored)
    assert model.load(), model.error
    repo = ModelRepository()
    repo.update(model)
    plane = DataPlane(model_registry=repo)
    inp = InferInput("features", [2, 13], "FP32")
    inp.set_data_from_numpy(np.ones((2, 13), np.float32), binary_data=False)
    request = InferRequest("wine-torch", [inp], request_id="r1")
    response, _ = asyncio.run(plane.infer("wine-torch", request))
    out = response.outputs[0].as_numpy()
    meta = asyncio.run(plane.model_metadata("wine-torch"))
    print(response.id, out.shape, round(float(out.sum()), 4), meta["inputs"][0]["shape"])
    """
)


def test_model_runs_under_kserve_dataplane() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(MODEL_STORE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "r1 (2, 3) 2.0 [-1, 13]"
