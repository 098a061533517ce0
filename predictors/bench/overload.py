"""`modelplane overload`: what one server does on a bad day — a reliability benchmark.

Prints figures, asserts nothing (a benchmark, not a timed test). One run:

1. capacity: closed-loop callers for a while, requests answered per second;
2. open-loop overload: arrivals at `--rate-factor` x that capacity for
   `--duration` seconds, each caller giving up after `--deadline` seconds
   (gRPC: the call's deadline; HTTP: the client timeout and Triton's
   `timeout` parameter). Counted: answered in time (goodput), shed
   (503/RESOURCE_EXHAUSTED), expired (504/DEADLINE_EXCEEDED), given up by
   the client, other errors; from the server's /metrics: runs completed, and
   those for callers already gone (the work wasted);
3. mixed protocols: as many HTTP as gRPC callers at once, each protocol's
   share, and a gRPC health check's latency meanwhile;
4. a large JSON body (`--big-body-mb`, 100 by default): its status and the
   server's peak RSS over idle while it is refused; and the liveness latency
   while a body just under the JSON limit is decoded;
5. RSS once a second throughout, and over an optional closed-loop soak.

The model is the bench's compute-bound CNN (built at run time, random
weights) unless `--model` names one in `--model-store`: overload matters where
compute, not protocol overhead, is the bottleneck, and a load generator on the
same two cores cannot offer three times the capacity of a microsecond model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from predictors.bench.loadgen import (
    Caller,
    RssSampler,
    closed_loop,
    counters,
    open_loop,
    prebuilt,
)

PROTOCOLS = ("grpc", "http")


def add_overload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-store", "--model_store", dest="model_store", default="model-store")
    parser.add_argument("--model", help="a model of --model-store (default: the bench's CNN)")
    parser.add_argument("--protocols", default="grpc,http", help="comma-separated")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop callers")
    parser.add_argument("--capacity-duration", type=float, default=5.0)
    parser.add_argument("--rate-factor", type=float, default=3.0, help="offered load x capacity")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of overload")
    parser.add_argument("--deadline", type=float, default=2.0, help="each caller's patience, s")
    parser.add_argument("--mixed-callers", type=int, default=64, help="per protocol")
    parser.add_argument("--mixed-duration", type=float, default=5.0)
    parser.add_argument("--big-body-mb", type=float, default=100.0)
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of closed-loop soak")
    parser.add_argument(
        "--serve-arg", dest="serve_args", action="append", default=[],
        help="extra argument for `modelplane serve` (repeatable)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")


@dataclass
class Report:
    model: str
    capacity_rps: dict[str, float] = field(default_factory=dict)
    overload: dict[str, dict[str, Any]] = field(default_factory=dict)
    mixed: dict[str, Any] = field(default_factory=dict)
    big_body: dict[str, Any] = field(default_factory=dict)
    rss_mib: list[tuple[float, float]] = field(default_factory=list)
    soak: dict[str, Any] = field(default_factory=dict)


async def mixed(http: Caller, grpc_caller: Caller, callers: int, seconds: float) -> dict[str, Any]:
    """As many HTTP as gRPC closed-loop callers: each one's rate, and health check latency."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    counts = {"http": 0, "grpc": 0}
    stop = time.monotonic() + seconds

    async def one(caller: Caller) -> None:
        while time.monotonic() < stop:
            outcome, _ = await caller.send(30.0)
            counts[caller.protocol] += outcome == "ok"

    health_ms: list[float] = []

    async def probe() -> None:
        async with grpc.aio.insecure_channel(grpc_caller.url) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < stop:
                started = time.monotonic()
                await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
                health_ms.append((time.monotonic() - started) * 1000)
                await asyncio.sleep(0.2)

    await asyncio.gather(
        *(one(http) for _ in range(callers)), *(one(grpc_caller) for _ in range(callers)), probe()
    )
    health_ms.sort()
    return {
        "http_rps": counts["http"] / seconds,
        "grpc_rps": counts["grpc"] / seconds,
        "grpc_share": counts["grpc"] / max(1, counts["http"] + counts["grpc"]),
        "health_check_ms_p50": health_ms[len(health_ms) // 2] if health_ms else None,
        "health_check_ms_max": health_ms[-1] if health_ms else None,
    }


def big_body(server: Any, sampler: RssSampler, size_mb: float, input_name: str) -> dict[str, Any]:
    """A JSON body of size_mb refused (or not), and liveness while one just fits is decoded."""
    import http.client

    numbers = int(size_mb * 2**20 / 9)  # "0.123456," per number
    body = ('{"inputs":[{"name":"' + input_name + '","datatype":"FP32","shape":[1,' + str(numbers)
            + '],"data":[' + ",".join(["0.123456"] * numbers) + "]}]}").encode()  # fmt: skip
    idle = sampler.samples[-1][1] if sampler.samples else 0.0
    since = time.monotonic()
    host, port = server.http_url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    started = time.monotonic()
    connection.request("POST", f"/v2/models/{server.model}/infer", body=body)
    answer = connection.getresponse()
    answer.read()
    took = time.monotonic() - started
    time.sleep(0.5)
    result = {
        "body_mb": round(len(body) / 2**20, 1),
        "status": answer.status,
        "seconds": round(took, 2),
        "idle_rss_mib": idle,
        "peak_rss_over_idle_mib": round(sampler.peak_since(since) - idle, 1),
    }
    # Just under the JSON limit (16 MiB): decoded for real, off the event loop.
    numbers = int(15 * 2**20 / 9)
    near = ('{"inputs":[{"name":"' + input_name + '","datatype":"FP32","shape":[1,' + str(numbers)
            + '],"data":[' + ",".join(["0.123456"] * numbers) + "]}]}").encode()  # fmt: skip
    live_ms: list[float] = []

    def post() -> None:
        other = http.client.HTTPConnection(host, int(port), timeout=120)
        other.request("POST", f"/v2/models/{server.model}/infer", body=near)
        other.getresponse().read()

    worker = threading.Thread(target=post)
    worker.start()
    while worker.is_alive():
        probe = http.client.HTTPConnection(host, int(port), timeout=30)
        started = time.monotonic()
        probe.request("GET", "/v2/health/live")
        probe.getresponse().read()
        live_ms.append((time.monotonic() - started) * 1000)
        time.sleep(0.02)
    result["liveness_ms_max_during_15mb_decode"] = round(max(live_ms, default=0.0), 1)
    return result


def run_overload(args: argparse.Namespace) -> int:
    import numpy as np

    from predictors.bench.compute_model import COMPUTE_MODEL, add_compute_model
    from predictors.local_server import start_local_server
    from predictors.model_store import discover, newest

    protocols = [p for p in args.protocols.split(",") if p]
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-overload-")))
        if args.model:
            store, model = Path(args.model_store), args.model
        else:
            store, model = work / "store", COMPUTE_MODEL
            print(f"building the compute-bound CNN {model} ...", flush=True)
            add_compute_model(store, model)
        meta = newest(discover(store, [model]), model).read_metadata()
        rng = np.random.default_rng(0)
        inputs = {
            t.name: rng.random([1 if d == -1 else d for d in t.shape]).astype(t.dtype)
            for t in meta.inputs
        }
        server = start_local_server(store, work, "--models", model, *args.serve_args)
        server.model = model  # type: ignore[attr-defined]
        stack.callback(server.stop)
        sampler = RssSampler(server.process.pid, 1.0)
        stack.callback(sampler.stop)
        report = Report(model)

        async def measure() -> None:
            for protocol in protocols:
                url = server.grpc_url if protocol == "grpc" else server.http_url
                body, length = prebuilt(protocol, model, inputs, None)
                caller = Caller(protocol, url, model, body, length)
                await caller.open(max(args.concurrency, 256))
                capacity = await closed_loop(caller, args.concurrency, args.capacity_duration)
                report.capacity_rps[protocol] = round(capacity, 1)
                await caller.close()
                body, length = prebuilt(protocol, model, inputs, int(args.deadline * 1e6))
                caller = Caller(protocol, url, model, body, length)
                await caller.open(4096)
                before = counters(server, model)
                offered = capacity * args.rate_factor
                print(
                    f"{protocol}: capacity {capacity:.0f} req/s; offering "
                    f"{offered:.0f} req/s for {args.duration:g} s",
                    flush=True,
                )
                tally = await open_loop(
                    caller, capacity * args.rate_factor, args.duration, args.deadline
                )
                await asyncio.sleep(args.deadline + 0.5)  # the last ones finish or expire
                after = counters(server, model)
                await caller.close()
                server_side = {k: after[k] - before[k] for k in after}
                report.overload[protocol] = {
                    **asdict(tally),
                    "offered_rps": round(capacity * args.rate_factor, 1),
                    "goodput_rps": round(tally.in_time / args.duration, 1),
                    "goodput_vs_capacity": round(tally.in_time / args.duration / capacity, 3),
                    "server": server_side,
                    "wasted_vs_completed": round(
                        server_side["wasted"] / max(1.0, server_side["completed"]), 4
                    ),
                    # Answers the server sent while their caller still waited: the
                    # goodput the server delivered, whatever the load generator
                    # (on the same cores) then made of it.
                    "server_goodput_vs_capacity": round(
                        (server_side["completed"] - server_side["wasted"])
                        / args.duration
                        / capacity,
                        3,
                    ),
                }
            if len(protocols) == 2:
                callers = []
                for protocol in ("http", "grpc"):
                    url = server.grpc_url if protocol == "grpc" else server.http_url
                    body, length = prebuilt(protocol, model, inputs, None)
                    caller = Caller(protocol, url, model, body, length)
                    await caller.open(args.mixed_callers)
                    callers.append(caller)
                report.mixed = await mixed(
                    callers[0], callers[1], args.mixed_callers, args.mixed_duration
                )
                for caller in callers:
                    await caller.close()
            if args.soak > 0:
                body, length = prebuilt("grpc", model, inputs, None)
                caller = Caller("grpc", server.grpc_url, model, body, length)
                await caller.open(args.concurrency)
                start_rss = sampler.samples[-1][1] if sampler.samples else 0.0
                rps = await closed_loop(caller, args.concurrency, args.soak)
                await caller.close()
                end_rss = sampler.samples[-1][1] if sampler.samples else 0.0
                report.soak = {
                    "seconds": args.soak,
                    "rps": round(rps, 1),
                    "rss_start_mib": start_rss,
                    "rss_end_mib": end_rss,
                }

        asyncio.run(measure())
        if args.big_body_mb > 0:
            report.big_body = big_body(server, sampler, args.big_body_mb, meta.inputs[0].name)
        report.rss_mib = list(sampler.samples)
    print_overload(report)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 0


def print_overload(report: Report) -> None:
    print(f"\nmodelplane overload, model {report.model}")
    for protocol, capacity in report.capacity_rps.items():
        o = report.overload.get(protocol, {})
        s = o.get("server", {})
        print(
            f"  {protocol}: closed-loop capacity {capacity:.0f} req/s; open loop at "
            f"{o.get('offered_rps', 0):.0f} req/s: sent {o.get('sent')}, "
            f"in time {o.get('in_time')}, late {o.get('late')}, shed {o.get('shed')}, "
            f"expired {o.get('expired')}, gave up {o.get('gave_up')}, other {o.get('other')}"
        )
        print(
            f"      goodput {o.get('goodput_rps', 0):.0f} req/s = "
            f"{o.get('goodput_vs_capacity', 0):.2f} x capacity as the clients saw it, "
            f"{o.get('server_goodput_vs_capacity', 0):.2f} x as the server sent it; "
            f"server completed {s.get('completed', 0):.0f}, for callers already gone "
            f"{s.get('wasted', 0):.0f} ({o.get('wasted_vs_completed', 0):.1%}), dropped "
            f"before running {s.get('dropped', 0):.0f}, shed {s.get('shed', 0):.0f}"
        )
        if o.get("first_other"):
            print(f"      first other error: {o['first_other']}")
    if report.mixed:
        m = report.mixed
        print(
            f"  mixed: HTTP {m['http_rps']:.0f} req/s, gRPC {m['grpc_rps']:.0f} req/s "
            f"(gRPC share {m['grpc_share']:.0%}); gRPC health check p50 "
            f"{m['health_check_ms_p50']:.1f} ms, max {m['health_check_ms_max']:.1f} ms"
        )
    if report.big_body:
        b = report.big_body
        print(
            f"  a {b['body_mb']} MB JSON body: HTTP {b['status']} in {b['seconds']} s, "
            f"peak RSS {b['peak_rss_over_idle_mib']} MiB over idle ({b['idle_rss_mib']} MiB); "
            f"liveness at most {b['liveness_ms_max_during_15mb_decode']} ms while a 15 MB "
            "body decoded"
        )
    if report.soak:
        s = report.soak
        print(f"  soak {s['seconds']:g} s at {s['rps']:.0f} req/s: RSS {s['rss_start_mib']} -> "
              f"{s['rss_end_mib']} MiB")  # fmt: skip
    if report.rss_mib:
        print("  RSS (s, MiB): " + ", ".join(f"{t:g}:{r:.0f}" for t, r in report.rss_mib[::5]))
