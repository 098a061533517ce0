"""Start the naive KServe predictor (predictors.bench.kserve_baseline) as a subprocess.

One process per model, on free loopback ports, like `modelplane serve` in
predictors.local_server; the bench drives it with the same clients. This
module never imports kserve: that stays in the child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from predictors.local_server import PACKAGE_ROOT, LocalServer, free_port


def start_kserve_baseline(
    model_file: Path, model_name: str, log_dir: Path, wait: str | None = "ready"
) -> LocalServer:
    """KServe's ModelServer serving one ONNX file as `model_name`; waits until it answers."""
    http_port, grpc_port = free_port(), free_port()
    log_path = log_dir / f"kserve-{model_name}-{http_port}.log"
    command = [
        sys.executable, "-m", "predictors.bench.kserve_baseline",
        "--model_file", str(model_file), "--model_name", model_name,
        "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        # KServe logs a line per request by default; the bench would time the logging.
        "--enable_latency_logging", "false",
    ]  # fmt: skip
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LocalServer(process, http_port, grpc_port, log_path)
    if wait:
        try:
            server.wait(wait, 120)
        except Exception:
            server.stop()
            raise
    return server
