"""`modelplane serve` as a subprocess on free loopback ports.

For the bench, the scripts and the tests: they talk to a real server over the
wire, and a subprocess also keeps KServe's protobufs out of a process that
uses tritonclient's (both register `inference.*`).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path
    #: "https" for a server started with --ssl_certfile/--ssl_keyfile
    scheme: str = "http"
    #: the CA that signed its certificate, to check it while waiting
    cafile: Path | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (the server drains), then kill if it overstays."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def wait(self, endpoint: str = "ready", timeout: float = 120) -> None:
        """Poll /v2/health/<endpoint> until 200; raise with the log if it never comes."""
        deadline = time.monotonic() + timeout
        url = f"{self.scheme}://{self.http_url}/v2/health/{endpoint}"
        context = ssl.create_default_context(cafile=str(self.cafile)) if self.cafile else None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"modelplane serve exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(
            f"modelplane serve not {endpoint} in {timeout:.0f}s:\n{self.log()[-4000:]}"
        )


def start_local_server(
    store: Path,
    log_dir: Path,
    *args: str,
    wait: str | None = "ready",
    timeout: float = 120,
    scheme: str = "http",
    cafile: Path | None = None,
    user: int | None = None,
) -> LocalServer:
    """Start `modelplane serve --model-store store args...` on 127.0.0.1 and wait for it."""
    http_port, grpc_port = free_port(), free_port()
    log_path = log_dir / f"serve-{http_port}.log"
    command = [
        sys.executable, "-m", "predictors.cli", "serve", "--model-store", str(store),
        "--host", "127.0.0.1", "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        *args,
    ]  # fmt: skip
    if user is not None:
        # Tests of file permissions need a server that root's rights do not cover.
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    env = os.environ.copy()
    # The subprocess imports this very predictors package, wherever it lives.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LocalServer(process, http_port, grpc_port, log_path, scheme, cafile)
    if wait:
        try:
            server.wait(wait, timeout)
        except Exception:
            server.stop()
            raise
    return server
