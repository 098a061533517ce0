"""Triton's perf_analyzer measures a modelplane model, as it measures a Triton one.

perf_analyzer plans its requests from the model configuration and metadata,
checks the server's statistics around every measurement window (its compute
counts must agree) and reads results the way Triton's C++ clients do, so a
run that completes over HTTP and gRPC, streaming, and with system shared
memory is the extensions working together for a real client. The binary is
the one in the tritonclient 2.48.0 wheel (scripts/test-setup/perf_analyzer.sh,
run by `make test-setup`); without it these tests skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import tritonclient.grpc as grpcclient

from tests.support import MODEL_STORE, REPO, Server, start_server

PERF_DIR = REPO / ".work" / "perf_analyzer"
PERF_ANALYZER = PERF_DIR / "perf_analyzer"

pytestmark = pytest.mark.skipif(
    not PERF_ANALYZER.is_file(),
    reason=f"perf_analyzer is not installed at {PERF_ANALYZER}: run "
    "scripts/test-setup/perf_analyzer.sh (make test-setup does)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(MODEL_STORE, tmp_path_factory.mktemp("pa"), "--models", "wine-onnx")
    try:
        yield server
    finally:
        server.stop()


def perf_analyzer(*args: str) -> str:
    env = dict(os.environ, LD_LIBRARY_PATH=str(PERF_DIR / "lib"))
    command = [
        str(PERF_ANALYZER), "-m", "wine-onnx", "-b", "1", "--concurrency-range", "2",
        # Short windows, and any spread between them counts as stable: this
        # checks that the measurement works, not what it measures.
        "--measurement-interval", "500", "--stability-percentage", "100", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def counts(output: str) -> tuple[int, int]:
    client = int(re.search(r"Client:\s+Request count: (\d+)", output).group(1))  # type: ignore[union-attr]
    server = int(re.search(r"Successful request count: (\d+)", output).group(1))  # type: ignore[union-attr]
    return client, server


@pytest.mark.parametrize(
    "mode",
    [
        ["-i", "http"],
        ["-i", "grpc"],
        ["-i", "grpc", "--streaming"],
        ["-i", "http", "--shared-memory", "system"],
        ["-i", "grpc", "--shared-memory", "system"],
    ],
    ids=["http", "grpc", "grpc-streaming", "http-shm", "grpc-shm"],
)
def test_perf_analyzer_measures_the_model(server: Server, mode: list[str]) -> None:
    url = server.http_url if "http" in mode else server.grpc_url
    stats = grpcclient.InferenceServerClient(server.grpc_url)
    before = stats.get_inference_statistics("wine-onnx").model_stats[0].inference_stats
    output = perf_analyzer(*mode, "-u", url)

    assert "Server:" in output and "Avg request latency" in output
    client, served = counts(output)
    assert client > 0 and served > 0
    after = stats.get_inference_statistics("wine-onnx").model_stats[0].inference_stats
    assert after.success.count - before.success.count >= served
    assert after.fail.count == before.fail.count
    # No region left behind: perf_analyzer unregisters what it registered.
    assert len(stats.get_system_shared_memory_status().regions) == 0
