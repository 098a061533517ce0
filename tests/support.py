"""Real `modelplane serve` processes on free loopback ports, for tests."""

from __future__ import annotations

import sys
from pathlib import Path

from predictors.local_server import LocalServer, free_port, start_local_server

REPO = Path(__file__).resolve().parent.parent
MODEL_STORE = REPO / "model-store"
MODELPLANE = str(Path(sys.executable).parent / "modelplane")

Server = LocalServer
__all__ = ["MODELPLANE", "MODEL_STORE", "REPO", "Server", "free_port", "start_server"]


def start_server(
    store: Path,
    log_dir: Path,
    *extra: str,
    wait_ready: bool = True,
    timeout: float = 120,
    scheme: str = "http",
    cafile: Path | None = None,
    user: int | None = None,
) -> Server:
    """Start `modelplane serve` and wait (bounded) until it is ready, or only live."""
    return start_local_server(
        store,
        log_dir,
        *extra,
        wait="ready" if wait_ready else "live",
        timeout=timeout,
        scheme=scheme,
        cafile=cafile,
        user=user,
    )
