"""The overload benchmark's load: prebuilt requests, closed and open loops, RSS samples.

Requests are built once and sent as bytes (raw gRPC, aiohttp for HTTP), so
the generator, which shares the server's cores, costs as little as it can
per request. Outcomes are counted in one Tally per protocol.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Tally:
    sent: int = 0
    in_time: int = 0
    late: int = 0
    shed: int = 0
    expired: int = 0
    gave_up: int = 0
    other: int = 0
    first_other: str | None = None

    def add(self, outcome: str, detail: str = "") -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome == "other" and self.first_other is None:
            self.first_other = detail[:200]


class Caller:
    """One protocol's request, prebuilt, sent with a deadline; outcomes in Tally terms."""

    def __init__(self, protocol: str, url: str, model: str, body: bytes, json_length: int) -> None:
        self.protocol, self.url, self.model = protocol, url, model
        self.body, self.json_length = body, json_length
        self.channel: Any = None
        self.session: Any = None

    async def open(self, connections: int) -> None:
        if self.protocol == "grpc":
            import grpc

            self.channel = grpc.aio.insecure_channel(self.url)
            self.call = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        else:
            import aiohttp

            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=connections, force_close=False)
            )

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.session is not None:
            await self.session.close()

    async def send(self, deadline: float | None) -> tuple[str, str]:
        if self.protocol == "grpc":
            import grpc

            try:
                await self.call(self.body, timeout=deadline)
                return "ok", ""
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return "shed", ""
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    # grpc reports the client's own deadline the same way.
                    return "expired", ""
                return "other", f"{code.name}: {error.details()}"
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=deadline) if deadline else None
        headers = {"Inference-Header-Content-Length": str(self.json_length)}
        try:
            async with self.session.post(
                f"http://{self.url}/v2/models/{self.model}/infer",
                data=self.body,
                headers=headers,
                timeout=timeout,
            ) as answer:
                await answer.read()
                if answer.status == 200:
                    return "ok", ""
                if answer.status == 503:
                    return "shed", ""
                if answer.status == 504:
                    return "expired", ""
                return "other", f"HTTP {answer.status}"
        except TimeoutError:
            return "gave_up", ""
        except aiohttp.ClientError as exc:
            return "other", f"{type(exc).__name__}: {exc}"


def prebuilt(protocol: str, model: str, inputs: dict[str, Any], timeout_us: int | None) -> Any:
    """The request's bytes, built once (the generator should cost little per request)."""
    if protocol == "grpc":
        from predictors.protocol.grpc_messages import pb

        request = pb.ModelInferRequest(model_name=model)
        for name, array in inputs.items():
            request.inputs.add(name=name, datatype=_v2(array), shape=list(array.shape))
            request.raw_input_contents.append(array.tobytes())
        if timeout_us:
            request.parameters["timeout"].int64_param = timeout_us
        return request.SerializeToString(), 0
    header: dict[str, Any] = {
        "inputs": [
            {"name": n, "datatype": _v2(a), "shape": list(a.shape),
             "parameters": {"binary_data_size": a.nbytes}}
            for n, a in inputs.items()
        ],
        "outputs": [],
    }  # fmt: skip
    if timeout_us:
        header["parameters"] = {"timeout": timeout_us}
    head = json.dumps(header).encode()
    return head + b"".join(a.tobytes() for a in inputs.values()), len(head)


def _v2(array: Any) -> str:
    from predictors.protocol.datatypes import NUMPY_TO_V2

    return NUMPY_TO_V2[array.dtype]


async def closed_loop(caller: Caller, concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done
        while time.monotonic() < stop:
            outcome, _ = await caller.send(30.0)
            done += outcome == "ok"

    start = time.monotonic()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    return done / (time.monotonic() - start)


async def open_loop(caller: Caller, rate: float, seconds: float, deadline: float) -> Tally:
    """Poisson arrivals at `rate`; each request its own task, abandoned at `deadline`."""
    tally = Tally()
    rng = random.Random(1)
    tasks = []

    async def one() -> None:
        started = time.monotonic()
        outcome, detail = await caller.send(deadline)
        if outcome == "ok":
            outcome = "in_time" if time.monotonic() - started <= deadline else "late"
        tally.add(outcome, detail)

    stop = time.monotonic() + seconds
    next_at = time.monotonic()
    while next_at < stop:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        tally.sent += 1
        tasks.append(asyncio.ensure_future(one()))
        next_at += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    return tally


def counters(server: Any, model: str) -> dict[str, float]:
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://{server.http_url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    wanted = {
        "completed": ("modelplane_requests_total", 'status="200"'),
        "wasted": ("modelplane_expired_requests_total", 'stage="completed"'),
        "dropped": ("modelplane_expired_requests_total", 'stage="queued"'),
        "shed": ("modelplane_shed_requests_total", ""),
    }
    out = {}
    for key, (name, label) in wanted.items():
        out[key] = sum(
            float(v)
            for series, v in re.findall(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M)
            if f'model_name="{model}"' in series and label in series
        )
    return out


class RssSampler:
    """The server's RSS every `interval` seconds, from /proc, in a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self.start = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = self.process.memory_info().rss / 2**20
            except Exception:
                return
            self.samples.append((round(time.monotonic() - self.start, 2), round(rss, 1)))

    def peak_since(self, since: float) -> float:
        recent = [r for t, r in self.samples if t >= since - self.start]
        return max(recent, default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
