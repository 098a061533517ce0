"""Real `modelplane serve` processes on free loopback ports, for tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from predictors.local_server import LocalServer, free_port, start_local_server

REPO = Path(__file__).resolve().parent.parent
MODEL_STORE = REPO / "model-store"
MODELPLANE = str(Path(sys.executable).parent / "modelplane")

Server = LocalServer
__all__ = ["MODELPLANE", "MODEL_STORE", "REPO", "Server", "free_port", "save_onnx", "start_server"]


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


def save_onnx(graph: Any, path: Path) -> Path:
    """Save an onnx GraphProto as a model of opset 17 and IR version 8, as the tests' models are."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
