"""Listening right: both ports bound before either serves, alone, and without Nagle stalls."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

from predictors.serving.server import bind_http
from tests.support import MODEL_STORE, MODELPLANE, free_port, start_server


def test_accepted_connections_get_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY on accepted sockets only if the listener is IPPROTO_TCP
    (asyncio base_events._set_nodelay); a listener made with protocol 0 left every
    kept-alive HTTP request after the first ~40 ms behind (Nagle + delayed ACK)."""

    async def check() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = bind_http("127.0.0.1", 0)
        server = await asyncio.start_server(on_connect, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(check()) == 1


def serve(http_port: int, grpc_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODELPLANE, "serve", "--model_dir", str(MODEL_STORE / "wine-onnx"), "--host",
         "127.0.0.1", "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_taken_grpc_port_fails_the_start(tmp_path: Path) -> None:
    """grpc sets SO_REUSEPORT by default: a second server on the port started silently
    and took half the new connections."""
    first = start_server(MODEL_STORE / "wine-onnx", tmp_path)
    try:
        second = serve(free_port(), first.grpc_port)
        assert second.returncode == 2
        assert f"gRPC cannot listen on 127.0.0.1:{first.grpc_port}" in second.stderr
    finally:
        first.stop()


def test_a_taken_http_port_fails_before_grpc_listens(tmp_path: Path) -> None:
    grpc_port = free_port()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        result = serve(taken.getsockname()[1], grpc_port)
    assert result.returncode == 2
    assert "HTTP cannot listen on 127.0.0.1" in result.stderr
    assert "gRPC listening" not in result.stderr  # it never served
    # And nothing holds the gRPC port: binding it now succeeds.
    with socket.create_server(("127.0.0.1", grpc_port)):
        pass
