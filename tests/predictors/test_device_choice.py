"""`--device auto` says why it runs on the CPU; `--device cuda` fails instead of running there.

onnxruntime-gpu lists its CUDA provider even without a GPU and falls back to
the CPU by itself, so an image built for GPUs could serve on the CPU with no
word said (predictors/runtimes/cuda.py asks the driver instead). These run
where no CUDA device is; tests/predictors/test_gpu.py covers a GPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from predictors.runtimes.cuda import cuda_devices
from tests.support import MODEL_STORE, start_server

pytestmark = pytest.mark.skipif(cuda_devices()[0] > 0, reason="a CUDA device is present")


def test_auto_falls_back_to_cpu_and_says_why(tmp_path: Path) -> None:
    server = start_server(MODEL_STORE, tmp_path, "--models", "wine-onnx,wine-torch")
    try:
        meta = httpx.get(f"http://{server.http_url}/v2/models/wine-torch").json()
        assert meta["parameters"]["device"] == "cpu"
    finally:
        server.stop()
    lines = [line for line in server.log().splitlines() if "device auto: no CUDA device" in line]
    assert len(lines) == 1, lines  # once per process, not once per model
    assert f"({cuda_devices()[1]}); running on cpu" in lines[0]


def test_cuda_asked_for_and_absent_fails_the_model_with_the_reason(tmp_path: Path) -> None:
    server = start_server(
        MODEL_STORE, tmp_path, "--models", "wine-onnx,wine-torch", "--device", "cuda",
        wait_ready=False,
    )  # fmt: skip
    try:
        server.wait("live")
        for model in ("wine-onnx", "wine-torch"):
            for _ in range(100):
                ready = httpx.get(f"http://{server.http_url}/v2/models/{model}/ready").json()
                if "error" in ready:
                    break
                time.sleep(0.1)
            assert "device cuda was asked for, but" in ready["error"], ready
    finally:
        server.stop()
