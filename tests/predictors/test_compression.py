"""HTTP compression with tritonclient (sync and asyncio): compressed requests, compressed answers.

tritonclient's `request_compression_algorithm` and
`response_compression_algorithm`, for JSON and binary bodies; raw httpx
checks that the answer really was compressed, that a zip bomb gets 413
without taking the server down, and that bad bodies get V2 error bodies.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio

from tests.support import MODEL_STORE, Server, start_server

ROWS = 64
IMAGES = np.random.default_rng(0).random((ROWS, 1, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(MODEL_STORE, tmp_path_factory.mktemp("gz"), "--models", "digits-onnx")
    try:
        yield server
    finally:
        server.stop()


def inputs(module: object, binary: bool) -> list[object]:
    tensor = module.InferInput("image", [ROWS, 1, 8, 8], "FP32")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(IMAGES, binary_data=binary)
    return [tensor]


def outputs(module: object, binary: bool) -> list[object]:
    return [module.InferRequestedOutput("probabilities", binary_data=binary)]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def plain(server: Server) -> np.ndarray:
    client = httpclient.InferenceServerClient(server.http_url)
    return client.infer("digits-onnx", inputs(httpclient, True)).as_numpy("probabilities")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compression_both_ways(
    server: Server, plain: np.ndarray, algorithm: str, binary: bool
) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    result = client.infer(
        "digits-onnx",
        inputs(httpclient, binary),
        outputs=outputs(httpclient, binary),
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    np.testing.assert_allclose(result.as_numpy("probabilities"), plain, rtol=1e-6)

    async def async_call() -> np.ndarray:
        aio = httpaio.InferenceServerClient(server.http_url)
        try:
            answer = await aio.infer(
                "digits-onnx",
                inputs(httpaio, binary),
                outputs=outputs(httpaio, binary),
                request_compression_algorithm=algorithm,
                response_compression_algorithm=algorithm,
            )
            # aiohttp asks for gzip on every request: other routes stay uncompressed.
            assert (await aio.get_model_config("digits-onnx"))["name"] == "digits-onnx"
            return answer.as_numpy("probabilities")
        finally:
            await aio.close()

    np.testing.assert_allclose(asyncio.run(async_call()), plain, rtol=1e-6)


def test_answers_really_are_compressed(server: Server) -> None:
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs(httpclient, True), outputs=outputs(httpclient, False)
    )
    headers = {"Inference-Header-Content-Length": str(json_size), "Accept-Encoding": "deflate"}
    url = f"http://{server.http_url}/v2/models/digits-onnx/infer"
    with httpx.Client() as client:
        answer = client.post(
            url, content=gzip.compress(body), headers={**headers, "Content-Encoding": "gzip"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-encoding"] == "deflate"
        assert int(answer.headers["content-length"]) < len(answer.content)  # httpx inflated it
        assert len(answer.json()["outputs"][0]["data"]) == ROWS * 10
        # Small answers are not worth it; a client that refuses both gets none.
        small = {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0] * 64}
            ]
        }
        tiny = client.post(url, json=small, headers={"Accept-Encoding": "gzip"})
        assert tiny.status_code == 200 and "content-encoding" not in tiny.headers
        refused = client.post(url, content=body, headers={**headers, "Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in refused.headers


def test_zip_bomb_gets_413_and_the_server_keeps_serving(server: Server, plain: np.ndarray) -> None:
    url = f"http://{server.http_url}/v2/models/digits-onnx/infer"
    bomb = zlib.compress(b"{" + b" " * (128 << 20), 9)  # 128 MiB of JSON whitespace, ~128 KiB
    answer = httpx.post(url, content=bomb, headers={"Content-Encoding": "deflate"}, timeout=60)
    assert answer.status_code == 413
    assert "inflates past" in answer.json()["error"]

    corrupt = httpx.post(url, content=b"\x1f\x8bnot really", headers={"Content-Encoding": "gzip"})
    assert corrupt.status_code == 400 and "not valid gzip data" in corrupt.json()["error"]
    unknown = httpx.post(url, content=b"{}", headers={"Content-Encoding": "br"})
    assert unknown.status_code == 415 and "use gzip or deflate" in unknown.json()["error"]

    client = httpclient.InferenceServerClient(server.http_url)
    result = client.infer("digits-onnx", inputs(httpclient, True))
    np.testing.assert_allclose(result.as_numpy("probabilities"), plain, rtol=1e-6)
