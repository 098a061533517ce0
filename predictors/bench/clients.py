"""Load over the wire: tritonclient's asyncio clients, as users run them; the server's counters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from predictors.bench.measure import REQUEST_TIMEOUT_S, Cell, Sampler, cpu_sampler, drive
from predictors.local_server import LocalServer

if TYPE_CHECKING:
    import numpy as np


async def _client_caller(
    protocol: str, url: str, model: str, inputs: list[dict[str, np.ndarray]], concurrency: int
) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """A `call(i)` that sends request i (mod the pool), and the client's close."""
    if protocol == "grpc":
        import tritonclient.grpc.aio as grpcclient

        client = grpcclient.InferenceServerClient(url)
        # Built once: the bench should time the server, not the encoding of inputs.
        prepared = []
        for request in inputs:
            tensors = []
            for name, array in request.items():
                tensor = grpcclient.InferInput(name, list(array.shape), _v2(array))
                tensor.set_data_from_numpy(array)
                tensors.append(tensor)
            prepared.append(tensors)

        async def call_grpc(i: int) -> Any:
            return await client.infer(
                model, prepared[i % len(prepared)], client_timeout=REQUEST_TIMEOUT_S
            )

        return call_grpc, client.close

    import tritonclient.http.aio as httpclient

    http = httpclient.InferenceServerClient(
        url, conn_limit=max(concurrency, 1), conn_timeout=REQUEST_TIMEOUT_S
    )
    prepared_http = []
    for request in inputs:
        tensors = []
        for name, array in request.items():
            tensor = httpclient.InferInput(name, list(array.shape), _v2(array))
            tensor.set_data_from_numpy(array, binary_data=True)
            tensors.append(tensor)
        prepared_http.append(tensors)

    async def call_http(i: int) -> Any:
        # No `outputs`: tritonclient then asks for every output as binary.
        return await http.infer(model, prepared_http[i % len(prepared_http)])

    return call_http, http.close


def _v2(array: np.ndarray) -> str:
    from predictors.protocol.datatypes import NUMPY_TO_V2

    return NUMPY_TO_V2[array.dtype]


def batch_sampler(http_url: str, model: str) -> Sampler:
    """Rows and runs so far of `model`, from modelplane's batch-size histogram at /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    def sample() -> dict[str, float]:
        with urllib.request.urlopen(f"http://{http_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        found = {"batch_rows": 0.0, "batches": 0.0}
        for family in text_string_to_metric_families(text):
            if family.name != "modelplane_batch_size":
                continue
            for sample in family.samples:
                if sample.labels.get("model_name") != model:
                    continue
                if sample.name.endswith("_sum"):
                    found["batch_rows"] += sample.value
                elif sample.name.endswith("_count"):
                    found["batches"] += sample.value
        return found

    return sample


def server_sampler(server: LocalServer, model: str, batches: bool) -> Sampler:
    """CPU of both processes, plus the server's batch counters when it keeps them."""
    cpu = cpu_sampler(server.process.pid)
    if not batches:
        return cpu
    rows = batch_sampler(server.http_url, model)
    return lambda: {**cpu(), **rows()}


async def measure_served(
    server: LocalServer,
    protocol: str,
    model: str,
    inputs: list[dict[str, np.ndarray]],
    cell: Cell,
    warmup: float,
    duration: float,
    batches: bool = True,
) -> Cell:
    """Drive `server` with `cell.concurrency` callers; `batches`: it is a modelplane server."""
    url = server.grpc_url if protocol == "grpc" else server.http_url
    call, close = await _client_caller(protocol, url, model, inputs, cell.concurrency)
    try:
        return await drive(call, cell, warmup, duration, server_sampler(server, model, batches))
    finally:
        await close()
