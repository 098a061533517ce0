"""The KServe edge: KServe's own DataPlane serves a modelplane model through the adapter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import MODEL_STORE

# KServe's protobufs clash with tritonclient's (both define `inference.*`),
# so this runs in a process of its own, as KServe's ModelServer would.
SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import numpy as np
    from pathlib import Path
    from kserve import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferInput, InferRequest
    from predictors.serving.kserve_adapter import KServeModel

    model = KServeModel.from_store(Path(sys.argv[1]), "wine-torch")
    assert model.load(), model.served.error
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

    # A bad request is KServe's InvalidInput (400), with modelplane's message.
    from kserve.errors import InvalidInput
    bad = InferInput("features", [2, 12], "FP32")
    bad.set_data_from_numpy(np.ones((2, 12), np.float32), binary_data=False)
    try:
        asyncio.run(plane.infer("wine-torch", InferRequest("wine-torch", [bad])))
    except InvalidInput as exc:
        print("invalid:", exc)
    # KServe times predict itself: one observation per request, not two.
    from prometheus_client import REGISTRY
    print("predict count", REGISTRY.get_sample_value(
        "request_predict_seconds_count", {"model_name": "wine-torch"}))
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
    lines = result.stdout.strip().splitlines()[-3:]
    assert lines[0] == "r1 (2, 3) 2.0 [-1, 13]"
    assert lines[1] == (
        "invalid: input 'features': shape [2,12] does not match the model's [-1,13] "
        "(-1 is any size)"
    )
    assert lines[2] == "predict count 2.0"
