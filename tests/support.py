"""Starting real `modelplane serve` processes on free loopback ports, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
MODEL_STORE = REPO / "model-store"
MODELPLANE = str(Path(sys.executable).parent / "modelplane")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_server(
    store: Path, log_dir: Path, *extra: str, wait_ready: bool = True, timeout: float = 120
) -> Server:
    """Start `modelplane serve` and wait (bounded) until it is ready."""
    http_port, grpc_port = free_port(), free_port()
    log_path = log_dir / f"serve-{http_port}.log"
    cmd = [
        MODELPLANE,
        "serve",
        "--model-store",
        str(store),
        "--host",
        "127.0.0.1",
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
        *extra,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    server = Server(process, http_port, grpc_port, log_path)
    deadline = time.monotonic() + timeout
    url = f"http://{server.http_url}/v2/health/" + ("ready" if wait_ready else "live")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"modelplane serve exited with {process.returncode}:\n{server.log()}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"modelplane serve was not up within {timeout}s:\n{server.log()}")
