"""System shared memory as tritonclient's examples use it: HTTP and gRPC, sync and asyncio.

The client creates /dev/shm regions with tritonclient.utils.shared_memory,
writes inputs there, registers them, and reads outputs the server wrote
there. Bad regions, offsets and sizes get 400 / INVALID_ARGUMENT naming the
tensor, and the server keeps serving; CUDA shared memory says it is not
supported.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from tests.support import MODEL_STORE, Server, start_server

ROWS = 3
FEATURES = np.arange(ROWS * 13, dtype=np.float32).reshape(ROWS, 13) / 10
IN_BYTES, OUT_BYTES = FEATURES.nbytes, ROWS * 3 * 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(MODEL_STORE, tmp_path_factory.mktemp("shm"), "--models", "wine-onnx")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def regions() -> Iterator[tuple[str, object, str, object]]:
    """An input region holding FEATURES after 64 bytes of padding, and an output region."""
    tag = uuid.uuid4().hex[:8]
    in_key, out_key = f"/mp_in_{tag}", f"/mp_out_{tag}"
    inputs = shm.create_shared_memory_region(f"in_{tag}", in_key, 64 + IN_BYTES)
    outputs = shm.create_shared_memory_region(f"out_{tag}", out_key, OUT_BYTES)
    shm.set_shared_memory_region(inputs, [FEATURES], offset=64)
    try:
        yield in_key, inputs, out_key, outputs
    finally:
        shm.destroy_shared_memory_region(inputs)
        shm.destroy_shared_memory_region(outputs)


def expected(server: Server) -> np.ndarray:
    tensor = httpclient.InferInput("features", [ROWS, 13], "FP32")
    tensor.set_data_from_numpy(FEATURES)
    client = httpclient.InferenceServerClient(server.http_url)
    return client.infer("wine-onnx", [tensor]).as_numpy("probabilities")


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_inputs_and_outputs_through_shared_memory(
    server: Server, regions: tuple[str, object, str, object], module: object
) -> None:
    in_key, _, out_key, out_handle = regions
    want = expected(server)
    url = server.http_url if module is httpclient else server.grpc_url
    client = module.InferenceServerClient(url)  # type: ignore[attr-defined]
    client.unregister_system_shared_memory()
    client.register_system_shared_memory("input", in_key, 64 + IN_BYTES)
    client.register_system_shared_memory("output", out_key, OUT_BYTES)
    try:
        status = client.get_system_shared_memory_status()
        if module is httpclient:
            assert {r["name"]: r["byte_size"] for r in status} == {
                "input": 64 + IN_BYTES,
                "output": OUT_BYTES,
            }
        else:
            assert status.regions["input"].key == in_key
        tensor = module.InferInput("features", [ROWS, 13], "FP32")  # type: ignore[attr-defined]
        tensor.set_shared_memory("input", IN_BYTES, offset=64)
        wanted = module.InferRequestedOutput("probabilities")  # type: ignore[attr-defined]
        wanted.set_shared_memory("output", OUT_BYTES)
        result = client.infer("wine-onnx", [tensor], outputs=[wanted])
        output = result.get_output("probabilities")
        if module is httpclient:  # no data, and no parameters (Triton's C++ client)
            assert set(output) == {"name", "datatype", "shape"}
            shape = output["shape"]
        else:
            assert output.parameters["shared_memory_region"].string_param == "output"
            assert result.get_response().raw_output_contents == [b""]  # one per output
            shape = list(output.shape)
        got = shm.get_contents_as_numpy(out_handle, np.float32, shape)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    finally:
        client.unregister_system_shared_memory()
    after = client.get_system_shared_memory_status()
    assert len(after if module is httpclient else after.regions) == 0


def test_asyncio_clients(server: Server, regions: tuple[str, object, str, object]) -> None:
    in_key, _, out_key, out_handle = regions
    want = expected(server)

    async def run(module: object, url: str) -> np.ndarray:
        client = module.InferenceServerClient(url)  # type: ignore[attr-defined]
        try:
            await client.register_system_shared_memory("in", in_key, 64 + IN_BYTES)
            await client.register_system_shared_memory("out", out_key, OUT_BYTES)
            tensor = module.InferInput("features", [ROWS, 13], "FP32")  # type: ignore[attr-defined]
            tensor.set_shared_memory("in", IN_BYTES, offset=64)
            wanted = module.InferRequestedOutput("probabilities")  # type: ignore[attr-defined]
            wanted.set_shared_memory("out", OUT_BYTES)
            await client.infer("wine-onnx", [tensor], outputs=[wanted])
            return shm.get_contents_as_numpy(out_handle, np.float32, [ROWS, 3])
        finally:
            await client.unregister_system_shared_memory()
            await client.close()

    for module, url in [(httpaio, server.http_url), (grpcaio, server.grpc_url)]:
        shm.set_shared_memory_region(out_handle, [np.zeros((ROWS, 3), np.float32)])
        np.testing.assert_allclose(asyncio.run(run(module, url)), want, rtol=1e-6)


def test_bad_regions_offsets_and_sizes_are_refused(
    server: Server, regions: tuple[str, object, str, object]
) -> None:
    in_key, _, out_key, _ = regions
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    http.unregister_system_shared_memory()

    def refused(match: str, call: object, *args: object, **kwargs: object) -> None:
        with pytest.raises(InferenceServerException, match=match):
            call(*args, **kwargs)  # type: ignore[operator]

    refused("cannot open shared memory key", http.register_system_shared_memory, "x", "/mp_none", 8)
    refused("must name one object", http.register_system_shared_memory, "x", "/../etc/passwd", 8)
    refused("past the end", http.register_system_shared_memory, "x", in_key, 1 << 20)
    with pytest.raises(InferenceServerException) as grpc_refused:
        grpc.register_system_shared_memory("x", in_key, 8, offset=1 << 30)
    assert grpc_refused.value.status() == "StatusCode.INVALID_ARGUMENT"

    http.register_system_shared_memory("input", in_key, 64 + IN_BYTES)
    http.register_system_shared_memory("output", out_key, OUT_BYTES)
    refused("already registered", http.register_system_shared_memory, "input", in_key, 8)
    try:
        for client, module in [(http, httpclient), (grpc, grpcclient)]:

            def infer(region: str, size: int, offset: int, out_size: int = OUT_BYTES) -> None:
                tensor = module.InferInput("features", [ROWS, 13], "FP32")  # noqa: B023
                tensor.set_shared_memory(region, size, offset=offset)
                wanted = module.InferRequestedOutput("probabilities")  # noqa: B023
                wanted.set_shared_memory("output", out_size)
                client.infer("wine-onnx", [tensor], outputs=[wanted])  # noqa: B023

            refused(
                "input 'features': shared memory region 'nope' is not registered",
                infer,
                "nope",
                IN_BYTES,
                0,
            )
            refused(
                "input 'features': shared_memory_offset 100 \\+ shared_memory_byte_size",
                infer,
                "input",
                IN_BYTES,
                100,
            )
            refused(
                "input 'features': 7 bytes of binary data is not a whole number",
                infer,
                "input",
                7,
                64,
            )
            refused(
                "input 'features': shape \\[3,13\\] needs 39 values, got 13", infer, "input", 52, 64
            )
            refused(
                "output 'probabilities' is 36 bytes, more than its shared_memory_byte_size 8",
                infer,
                "input",
                IN_BYTES,
                64,
                8,
            )
        # ...and the server keeps serving.
        assert expected(server).shape == (ROWS, 3)
    finally:
        http.unregister_system_shared_memory()

    base = f"http://{server.http_url}/v2/systemsharedmemory"
    negative = httpx.post(
        f"{base}/region/x/register", json={"key": in_key, "offset": -1, "byte_size": 4}
    )
    assert (
        negative.status_code == 400
        and "offset must be a non-negative integer" in negative.json()["error"]
    )
    unknown = httpx.get(f"{base}/region/ghost/status")
    assert unknown.status_code == 400 and "ghost" in unknown.json()["error"]


def test_cuda_shared_memory_says_not_supported(server: Server) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_url)
    assert http.get_cuda_shared_memory_status() == []
    http.unregister_cuda_shared_memory()  # nothing to do, and no error (perf_analyzer calls it)
    assert len(grpc.get_cuda_shared_memory_status().regions) == 0
    with pytest.raises(InferenceServerException, match="CUDA shared memory is not supported"):
        http.register_cuda_shared_memory("gpu", b"\0" * 64, 0, 1024)
    with pytest.raises(InferenceServerException, match="CUDA shared memory is not supported"):
        grpc.register_cuda_shared_memory("gpu", b"\0" * 64, 0, 1024)
    assert "cuda_shared_memory" not in http.get_server_metadata()["extensions"]
    assert "system_shared_memory" in http.get_server_metadata()["extensions"]
