"""gRPC ModelStreamInfer, driven by tritonclient's streaming API (sync and asyncio).

100 requests on one stream with a bad one in the middle: every request gets
exactly one response, the bad one an error naming the problem, and the
stream carries on; the statistics count the stream's requests like unary ones.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from predictors.protocol.grpc_messages import pb, pb_grpc
from predictors.serving.streaming import MAX_STREAMS
from tests.support import MODEL_STORE, Server, start_server

COUNT, BAD = 100, 37


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(MODEL_STORE, tmp_path_factory.mktemp("stream"), "--models", "wine-onnx")
    try:
        yield server
    finally:
        server.stop()


def request_inputs(module: object, i: int) -> list[object]:
    """Request i: one row of wine features; request BAD has 12 features, not 13."""
    width = 12 if i == BAD else 13
    tensor = module.InferInput("features", [1, width], "FP32")  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(np.full((1, width), float(i % 7), np.float32))
    return [tensor]


def unary_answers(server: Server) -> dict[int, np.ndarray]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    return {
        v: client.infer("wine-onnx", request_inputs(grpcclient, v)).as_numpy("probabilities")
        for v in range(7)
    }


def test_one_stream_survives_a_bad_request(server: Server) -> None:
    expected = unary_answers(server)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    before = client.get_inference_statistics("wine-onnx").model_stats[0].inference_stats
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        for i in range(COUNT):
            client.async_stream_infer("wine-onnx", request_inputs(grpcclient, i), request_id=str(i))
        answers = [results.get(timeout=60) for _ in range(COUNT)]
    finally:
        client.stop_stream()
    assert results.empty()

    errors = [error for _, error in answers if error is not None]
    assert len(errors) == 1
    assert "input 'features': shape [1,12] does not match the model's [-1,13]" in str(errors[0])
    good = [result for result, error in answers if error is None]
    assert [r.get_response().id for r in good] == [str(i) for i in range(COUNT) if i != BAD]
    for result in good:
        i = int(result.get_response().id)
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected[i % 7], rtol=1e-6)

    after = client.get_inference_statistics("wine-onnx").model_stats[0].inference_stats
    assert after.success.count - before.success.count == COUNT - 1
    assert after.fail.count - before.fail.count == 1


def test_asyncio_stream(server: Server) -> None:
    expected = unary_answers(server)

    async def run() -> list[tuple[object, object]]:
        client = grpcaio.InferenceServerClient(server.grpc_url)

        async def requests() -> AsyncIterator[dict[str, object]]:
            for i in range(COUNT):
                yield {
                    "model_name": "wine-onnx",
                    "inputs": request_inputs(grpcaio, i),
                    "request_id": str(i),
                }

        try:
            return [answer async for answer in client.stream_infer(requests())]
        finally:
            await client.close()

    answers = asyncio.run(run())
    assert len(answers) == COUNT
    assert [error is not None for _, error in answers].index(True) == BAD
    assert "shape [1,12]" in str(answers[BAD][1])
    for i, (result, error) in enumerate(answers):
        if i != BAD:
            assert error is None
            assert result.get_response().id == str(i)  # type: ignore[attr-defined]
            np.testing.assert_allclose(
                result.as_numpy("probabilities"),  # type: ignore[attr-defined]
                expected[i % 7],
                rtol=1e-6,
            )


def test_unknown_model_on_a_stream_is_an_error_response(server: Server) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        client.async_stream_infer("nope", request_inputs(grpcclient, 0), request_id="a")
        client.async_stream_infer("wine-onnx", request_inputs(grpcclient, 1), request_id="b")
        first, second = results.get(timeout=30), results.get(timeout=30)
    finally:
        client.stop_stream()
    assert first[0] is None and "Model with name nope does not exist" in str(first[1])
    assert second[1] is None and second[0].get_response().id == "b"  # type: ignore[attr-defined]


def test_open_streams_do_not_use_up_max_threads(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Six streams stay open on a server with --max_threads 2, and unary calls still run.

    grpc's threaded server holds a thread per open stream; were those the
    --max_threads handler threads, the third stream (and every unary call)
    would wait forever.
    """
    server = start_server(
        MODEL_STORE, tmp_path_factory.mktemp("streams"), "--models", "wine-onnx",
        "--max_threads", "2",
    )  # fmt: skip
    clients = [grpcclient.InferenceServerClient(server.grpc_url) for _ in range(6)]
    results: queue.Queue[tuple[object, object]] = queue.Queue()
    try:
        for client in clients:
            client.start_stream(callback=lambda result, error: results.put((result, error)))
        for round_ in range(3):
            for i, client in enumerate(clients):
                client.async_stream_infer(
                    "wine-onnx", request_inputs(grpcclient, i), request_id=f"{round_}-{i}"
                )
            answers = [results.get(timeout=30) for _ in clients]
            assert all(error is None for _, error in answers)
            unary = grpcclient.InferenceServerClient(server.grpc_url)
            assert unary.infer("wine-onnx", request_inputs(grpcclient, 1)).as_numpy(
                "probabilities"
            ).shape == (1, 3)
    finally:
        for client in clients:
            client.stop_stream()
        server.stop()


def test_streams_past_the_limit_are_refused(server: Server) -> None:
    """The 65th open stream gets RESOURCE_EXHAUSTED at once; the others keep working."""
    channel = grpc.insecure_channel(server.grpc_url)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    feeds: list[queue.Queue[object]] = []
    calls = []
    stop = object()

    def requests(feed: queue.Queue[object]) -> Iterator[object]:
        while (item := feed.get()) is not stop:
            yield item

    try:
        for _ in range(MAX_STREAMS + 1):
            feed: queue.Queue[object] = queue.Queue()
            feeds.append(feed)
            calls.append(stub.ModelStreamInfer(requests(feed)))
        request = pb.ModelInferRequest(model_name="wine-onnx")
        tensor = request.inputs.add(name="features", datatype="FP32", shape=[1, 13])
        tensor.contents.fp32_contents.extend([1.0] * 13)
        for feed in feeds:
            feed.put(request)
        answered, refused = 0, 0
        for call in calls:
            try:
                next(call)
                answered += 1
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert f"{MAX_STREAMS} streams are open" in exc.details()
                refused += 1
        assert (answered, refused) == (MAX_STREAMS, 1)
    finally:
        for feed in feeds:
            feed.put(stop)
        for call in calls:
            call.cancel()
        channel.close()
