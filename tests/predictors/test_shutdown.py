"""SIGTERM lets in-flight requests finish, then the server exits cleanly."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from tests.support import MODEL_STORE, start_server


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    # Requests wait 1.5 s in the batch queue, so they are surely in flight at SIGTERM.
    server = start_server(
        MODEL_STORE,
        tmp_path,
        "--models",
        "wine-onnx",
        "--batching",
        "on",
        "--max_batch_size",
        "64",
        "--max_queue_delay_ms",
        "1500",
    )
    url = f"http://{server.http_url}/v2/models/wine-onnx/infer"
    body = {
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [1, 13], "data": np.ones(13).tolist()}
        ]
    }
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(httpx.post, url, json=body, timeout=30) for _ in range(8)]
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 8
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    assert "received SIGTERM: draining in-flight requests" in server.log()
    try:
        httpx.get(f"http://{server.http_url}/v2/health/live", timeout=2)
        raise AssertionError("the server still answers after it exited")
    except httpx.ConnectError:
        pass
