"""`modelplane bench`: closed-loop load on local servers, next to the raw runtimes.

The bench starts its own `modelplane serve` (a subprocess on free loopback
ports; batching on, and batching off for the comparison), drives every model
with C concurrent callers that each send the next request as soon as the last
one came back (batch 1 per request), over gRPC and HTTP (binary tensors), and
measures the same inputs on raw in-process onnxruntime / TorchScript with the
server's thread settings. Throughput, p50 and p99 go to a table (and to CSV or
JSON), with the two figures the project holds itself to:

(a) latency overhead: at concurrency 1, gRPC p50 <= 1.3 x raw p50 + 1 ms;
(b) batching pays: at concurrency 16, throughput with batching >= 2 x without.

Only the standard library is imported at module level, so `modelplane --help`
stays fast. This process must never import kserve: kserve and tritonclient
both register the `inference.*` protobufs, and the second one to load fails.
So the server runs as a subprocess and only kserve-free modules are imported
here (predictors.metadata, predictors.runtimes.*, predictors.training.datasets).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictors.local_server import LocalServer, start_local_server
from predictors.settings import add_batch_limit_arguments

if TYPE_CHECKING:
    import numpy as np

    from predictors.metadata import ModelMetadata

BUNDLED_MODELS = ("digits-onnx", "digits-torch", "wine-onnx", "wine-torch")
PROTOCOLS = ("grpc", "http")
# Acceptance figures (see the module docstring and docs/README).
LATENCY_FACTOR = 1.3
LATENCY_SLACK_MS = 1.0
BATCHING_SPEEDUP = 2.0
BATCHING_CONCURRENCY = 16
# Distinct inputs cycled through per model: enough that no cache sees one tensor.
INPUT_POOL = 256
# A request that takes longer than this is an error, so a stuck server cannot
# stall the bench; each cell also stops issuing requests at its deadline.
REQUEST_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 180.0
SERVER_STOP_TIMEOUT_S = 30.0

RAW = "raw"
SERVED = "modelplane"


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-store", "--model_store", dest="model_store", default="model-store")
    parser.add_argument(
        "--models",
        default=",".join(BUNDLED_MODELS),
        help="comma-separated model names (default: the four bundled models)",
    )
    parser.add_argument(
        "--protocols", default=",".join(PROTOCOLS), help="comma-separated: grpc, http"
    )
    parser.add_argument(
        "--concurrency",
        default="1,4,16",
        help="comma-separated numbers of closed-loop callers (default 1,4,16)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=1.5,
        help="measured seconds per cell (model x protocol x concurrency x batching)",
    )
    parser.add_argument(
        "--warmup", type=float, default=0.3, help="unmeasured seconds before each cell"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads, for the servers and the raw runtimes alike "
        "(0: all CPUs but one, as `modelplane serve` does)",
    )
    add_batch_limit_arguments(parser)
    parser.add_argument(
        "--no-unbatched",
        dest="unbatched",
        action="store_false",
        help="skip the second server with --batching off (and acceptance figure b)",
    )
    parser.add_argument(
        "--serve-arg",
        dest="serve_args",
        action="append",
        default=[],
        help="extra argument for both `modelplane serve` processes (repeatable), "
        "e.g. --serve-arg=--fp16",
    )
    parser.add_argument("--csv", type=Path, help="also write the results as CSV here")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--server-log-dir",
        type=Path,
        help="keep the servers' logs here (default: a temporary folder, removed)",
    )


# -- settings ------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    model_store: Path
    models: list[str]
    protocols: list[str]
    concurrency: list[int]
    duration: float
    warmup: float
    threads: int
    max_batch_size: int
    max_queue_delay_ms: float
    unbatched: bool
    serve_args: list[str]
    csv: Path | None
    json: Path | None
    server_log_dir: Path | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchSettings:
        models = _names(args.models)
        protocols = _names(args.protocols)
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad or not protocols:
            raise ValueError(f"--protocols: expected some of {', '.join(PROTOCOLS)}, got {bad}")
        try:
            concurrency = sorted({int(c) for c in _names(args.concurrency)})
        except ValueError as exc:
            raise ValueError(f"--concurrency: expected numbers like 1,4,16 ({exc})") from exc
        if not concurrency or concurrency[0] < 1 or concurrency[-1] > 1024:
            raise ValueError("--concurrency: each value must be between 1 and 1024")
        if not models:
            raise ValueError("--models: name at least one model")
        if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
            raise ValueError("--duration must be in (0, 600] s and --warmup in [0, 60] s")
        if args.threads < 0:
            raise ValueError("--threads must be 0 (all CPUs) or more")
        return cls(
            model_store=Path(args.model_store),
            models=models,
            protocols=protocols,
            concurrency=concurrency,
            duration=args.duration,
            warmup=args.warmup,
            threads=args.threads,
            max_batch_size=args.max_batch_size,
            max_queue_delay_ms=args.max_queue_delay_ms,
            unbatched=args.unbatched,
            serve_args=list(args.serve_args),
            csv=args.csv,
            json=args.json,
            server_log_dir=args.server_log_dir,
        )


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# -- measurements --------------------------------------------------------------


@dataclass
class Cell:
    """One measured combination; `target` is raw (in-process) or modelplane."""

    model: str
    target: str
    runtime: str  # onnxruntime | torchscript
    protocol: str  # grpc | http | in-process
    batching: str  # on | off | - (raw)
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    throughput_rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    #: this cell over the raw runtime at the same concurrency (None for raw)
    throughput_vs_raw: float | None = None
    p50_vs_raw: float | None = None
    #: CPU seconds the server process (and this load generator) spent in the
    #: measured window, per request that finished in it, in microseconds
    server_cpu_us: float | None = None
    client_cpu_us: float | None = None
    first_error: str | None = None

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model, self.protocol, self.batching, self.concurrency)


@dataclass
class _Samples:
    """Start and end times of completed requests, filled by the callers."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def record(self, start: float, end: float) -> None:
        self.starts.append(start)
        self.ends.append(end)

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


def _summarise(cell: Cell, samples: _Samples, window: tuple[float, float]) -> Cell:
    """Throughput: requests that finished in the window; latency: those wholly in it."""
    import numpy as np

    begin, end = window
    starts = np.asarray(samples.starts)
    ends = np.asarray(samples.ends)
    finished = int(np.count_nonzero((ends >= begin) & (ends <= end)))
    inside = (starts >= begin) & (ends <= end)
    latencies_ms = (ends[inside] - starts[inside]) * 1000.0
    cell.requests = finished
    cell.errors = samples.errors
    cell.first_error = samples.first_error
    cell.seconds = end - begin
    cell.throughput_rps = finished / cell.seconds if cell.seconds > 0 else 0.0
    if latencies_ms.size:
        p50, p99 = np.percentile(latencies_ms, [50, 99])
        cell.p50_ms, cell.p99_ms = float(p50), float(p99)
        cell.mean_ms = float(latencies_ms.mean())
    return cell


def _window(warmup: float, duration: float) -> tuple[float, float]:
    begin = time.perf_counter() + warmup
    return begin, begin + duration


# -- inputs --------------------------------------------------------------------


def load_inputs(meta: ModelMetadata, count: int = INPUT_POOL) -> list[dict[str, np.ndarray]]:
    """Batch-1 requests: held-out rows for the bundled data sets, else random of the right shape."""
    import numpy as np

    rows = _heldout_rows(meta)
    if rows is not None:
        spec = meta.inputs[0]
        pool = rows[:count].astype(spec.dtype, copy=False)
        return [{spec.name: np.ascontiguousarray(pool[i : i + 1])} for i in range(len(pool))]
    rng = np.random.default_rng(meta.seed or 0)
    requests = []
    for _ in range(count):
        request = {}
        for spec in meta.inputs:
            shape = [1 if d == -1 else d for d in spec.shape]
            if spec.dtype.kind == "f":
                data = rng.random(shape).astype(spec.dtype)
            elif spec.dtype.kind == "b":
                data = rng.integers(0, 2, shape).astype(spec.dtype)
            else:
                data = rng.integers(0, 10, shape).astype(spec.dtype)
            request[spec.name] = data
        requests.append(request)
    return requests


def _heldout_rows(meta: ModelMetadata) -> np.ndarray | None:
    """The bundled models' held-out split (as in training), when this model is one of them."""
    dataset = str(meta.provenance.get("dataset", ""))
    if len(meta.inputs) != 1 or meta.seed is None:
        return None
    try:
        from predictors.training import datasets
    except ImportError:
        return None
    loader = {
        "sklearn.datasets.load_digits": datasets.digits,
        "sklearn.datasets.load_wine": datasets.wine,
    }.get(dataset)
    if loader is None:
        return None
    try:
        x_test = loader(meta.seed).x_test
    except ImportError:  # scikit-learn is the `train` extra
        return None
    spec = meta.inputs[0]
    if list(x_test.shape[1:]) != [d for d in spec.shape[1:]]:
        return None
    return x_test


# -- raw runtimes, in this process ---------------------------------------------


def raw_runner(
    model_dir: Path, meta: ModelMetadata, threads: int
) -> Callable[[dict[str, np.ndarray]], Any]:
    """A callable that runs one request on the bare runtime, set up like the server's."""
    from predictors.runtimes import RuntimeOptions, intra_op_threads

    options = RuntimeOptions(device="cpu", intra_op_threads=threads)
    if meta.format == "onnx":
        import onnxruntime as ort

        from predictors.runtimes.onnx_runtime import session_options

        session = ort.InferenceSession(
            str(model_dir / meta.model_file),
            sess_options=session_options(options),
            providers=["CPUExecutionProvider"],
        )
        names = [o.name for o in meta.outputs]
        return lambda inputs: session.run(names, inputs)

    import torch

    # The server sets this once per process too (TorchScriptRuntime).
    torch.set_num_threads(intra_op_threads(threads))
    module = torch.jit.load(str(model_dir / meta.model_file), map_location="cpu").eval()
    order = [t.name for t in meta.inputs]

    def run(inputs: dict[str, np.ndarray]) -> Any:
        with torch.inference_mode():
            return module(*(torch.from_numpy(inputs[n]) for n in order))

    return run


def measure_raw(
    run: Callable[[dict[str, np.ndarray]], Any],
    inputs: list[dict[str, np.ndarray]],
    cell: Cell,
    warmup: float,
    duration: float,
) -> Cell:
    """C threads, each calling the runtime in a closed loop (both runtimes release the GIL)."""
    for request in inputs[:8]:  # first runs allocate; no one should time those
        run(request)
    samples = _Samples()
    lock = threading.Lock()
    window = _window(warmup, duration)

    def caller(offset: int) -> None:
        local: list[tuple[float, float]] = []
        i = offset
        while True:
            start = time.perf_counter()
            if start >= window[1]:
                break
            run(inputs[i % len(inputs)])
            local.append((start, time.perf_counter()))
            i += 1
        with lock:
            for s, e in local:
                samples.record(s, e)

    threads = [
        threading.Thread(target=caller, args=(n * 7,), daemon=True) for n in range(cell.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        # Bounded: each caller stops at the window's end plus one run.
        t.join(window[1] - time.perf_counter() + REQUEST_TIMEOUT_S)
    return _summarise(cell, samples, window)


# -- the servers ---------------------------------------------------------------


def _serve_args(settings: BenchSettings, batching: str) -> list[str]:
    args = [
        "--models", ",".join(settings.models), "--device", "cpu",
        "--threads", str(settings.threads), "--batching", batching, "--log_level", "WARNING",
    ]  # fmt: skip
    if batching == "on":
        args += [
            "--max_batch_size", str(settings.max_batch_size),
            "--max_queue_delay_ms", str(settings.max_queue_delay_ms),
        ]  # fmt: skip
    return args + settings.serve_args


@contextmanager
def local_server(settings: BenchSettings, batching: str, log_dir: Path) -> Iterator[LocalServer]:
    # Not waited for here: both servers load their models at the same time.
    server = start_local_server(
        settings.model_store, log_dir, *_serve_args(settings, batching), wait=None
    )
    try:
        yield server
    finally:
        server.stop(SERVER_STOP_TIMEOUT_S)


# -- load over the wire --------------------------------------------------------


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
    from predictors.metadata import NUMPY_TO_V2

    return NUMPY_TO_V2[array.dtype]


async def _cpu_in_window(window: tuple[float, float], server_pid: int) -> tuple[float, float]:
    """CPU seconds of the server process and of this process between the window's ends."""
    import psutil

    server = psutil.Process(server_pid)

    def sample() -> tuple[float, float]:
        times = server.cpu_times()
        return times.user + times.system, time.process_time()

    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    server_start, client_start = sample()
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    server_end, client_end = sample()
    return server_end - server_start, client_end - client_start


async def _drive(
    call: Callable[[int], Awaitable[Any]],
    cell: Cell,
    warmup: float,
    duration: float,
    server_pid: int | None = None,
) -> Cell:
    samples = _Samples()
    # Check the path works before loading it: one failure here says why at once.
    await call(0)
    window = _window(warmup, duration)
    cpu = asyncio.create_task(_cpu_in_window(window, server_pid)) if server_pid else None

    async def caller(offset: int) -> None:
        i = offset
        while True:
            start = time.perf_counter()
            if start >= window[1]:
                return
            try:
                await call(i)
            except Exception as exc:
                samples.fail(exc)
                if samples.errors > 100:  # the server is not answering; end the cell
                    return
            else:
                samples.record(start, time.perf_counter())
            i += 1

    await asyncio.gather(*(caller(n * 7) for n in range(cell.concurrency)))
    cell = _summarise(cell, samples, window)
    if cpu is not None:
        server_s, client_s = await cpu
        if cell.requests:
            cell.server_cpu_us = server_s / cell.requests * 1e6
            cell.client_cpu_us = client_s / cell.requests * 1e6
    return cell


async def measure_served(
    server: LocalServer,
    protocol: str,
    model: str,
    inputs: list[dict[str, np.ndarray]],
    cell: Cell,
    warmup: float,
    duration: float,
) -> Cell:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    call, close = await _client_caller(protocol, url, model, inputs, cell.concurrency)
    try:
        return await _drive(call, cell, warmup, duration, server.process.pid)
    finally:
        await close()


# -- the run -------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    from predictors.runtimes import available_cpus

    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    for package in ("onnxruntime", "torch", "numpy", "grpcio", "tritonclient"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            continue
    return {
        "nproc": available_cpus(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "versions": versions,
    }


def _runtime_name(meta: ModelMetadata) -> str:
    return "onnxruntime" if meta.format == "onnx" else "torchscript"


def run(settings: BenchSettings, console: Any) -> dict[str, Any]:
    """Measure everything asked; return the report (also what --json writes)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from predictors.metadata import ModelMetadata
    from predictors.runtimes import available_cpus

    model_dirs = {name: _model_dir(settings.model_store, name) for name in settings.models}
    metas = {name: ModelMetadata.read(path) for name, path in model_dirs.items()}
    inputs = {name: load_inputs(meta) for name, meta in metas.items()}
    modes = ["on", "off"] if settings.unbatched else ["on"]
    served_cells = [
        Cell(name, SERVED, _runtime_name(metas[name]), protocol, mode, c)
        for mode in modes
        for name in settings.models
        for protocol in settings.protocols
        for c in settings.concurrency
    ]
    raw_cells = [
        Cell(name, RAW, _runtime_name(metas[name]), "in-process", "-", c)
        for name in settings.models
        for c in settings.concurrency
    ]
    per_cell = settings.warmup + settings.duration
    console.print(
        f"[bold]modelplane bench[/]: {len(served_cells)} served + {len(raw_cells)} raw cells "
        f"of {settings.duration:g}s (+{settings.warmup:g}s warm-up), about "
        f"{(len(served_cells) + len(raw_cells)) * per_cell:.0f}s of load on "
        f"{available_cpus()} CPUs"
    )

    results: list[Cell] = []
    with ExitStack() as stack:
        log_dir = settings.server_log_dir
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-bench-")))
        log_dir.mkdir(parents=True, exist_ok=True)
        # Both servers start (and load) at once, then are driven one at a time;
        # an idle server costs memory, not CPU.
        servers = {
            mode: stack.enter_context(local_server(settings, mode, log_dir)) for mode in modes
        }
        progress = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
        )
        task = progress.add_task("starting servers", total=len(served_cells) + len(raw_cells))
        for server in servers.values():
            server.wait("ready", SERVER_START_TIMEOUT_S)

        # Raw first, while nothing else runs in this process.
        for cell in raw_cells:
            progress.update(task, description=f"raw {cell.model} c={cell.concurrency}")
            runner = raw_runner(model_dirs[cell.model], metas[cell.model], settings.threads)
            results.append(
                measure_raw(runner, inputs[cell.model], cell, settings.warmup, settings.duration)
            )
            progress.advance(task)

        async def drive_all() -> None:
            for cell in served_cells:
                progress.update(
                    task,
                    description=f"{cell.model} {cell.protocol} batching {cell.batching} "
                    f"c={cell.concurrency}",
                )
                results.append(
                    await measure_served(
                        servers[cell.batching],
                        cell.protocol,
                        cell.model,
                        inputs[cell.model],
                        cell,
                        settings.warmup,
                        settings.duration,
                    )
                )
                progress.advance(task)

        asyncio.run(drive_all())
        progress.update(task, description="done")

    _add_ratios(results)
    return {
        "machine": _machine(),
        "settings": _settings_doc(settings),
        "results": [asdict(c) for c in results],
        "acceptance": acceptance(results, settings),
    }


def _model_dir(store: Path, name: str) -> Path:
    """The newest version folder of a model in a store root."""
    root = store / name
    if not root.is_dir():
        raise ValueError(f"model {name!r} is not in {store}")
    versions = [p for p in root.iterdir() if (p / "metadata.json").is_file()]
    if not versions:
        raise ValueError(f"model {name!r} in {store} has no version with a metadata.json")

    def order(p: Path) -> tuple[int, int | str]:
        return (0, int(p.name)) if p.name.isdigit() else (1, p.name)

    return max(versions, key=order)


def _settings_doc(settings: BenchSettings) -> dict[str, Any]:
    doc = asdict(settings)
    for key in ("model_store", "csv", "json", "server_log_dir"):
        doc[key] = None if doc[key] is None else str(doc[key])
    return doc


def _add_ratios(results: list[Cell]) -> None:
    raw = {(c.model, c.concurrency): c for c in results if c.target == RAW}
    for cell in results:
        base = raw.get((cell.model, cell.concurrency))
        if cell.target == RAW or base is None:
            continue
        if base.throughput_rps > 0:
            cell.throughput_vs_raw = cell.throughput_rps / base.throughput_rps
        if base.p50_ms > 0:
            cell.p50_vs_raw = cell.p50_ms / base.p50_ms


def _raw_us(cell: Cell | None) -> float | None:
    """The bare runtime's time per single-row request (concurrency 1)."""
    if cell is None or not cell.throughput_rps:
        return None
    return 1e6 / cell.throughput_rps


def acceptance(results: list[Cell], settings: BenchSettings) -> dict[str, Any]:
    """The two figures, per model (and protocol), with pass/fail; None where not measured."""
    by_key = {c.key: c for c in results if c.target == SERVED}
    raw = {(c.model, c.concurrency): c for c in results if c.target == RAW}
    latency = []
    for model in settings.models:
        served, base = by_key.get((model, "grpc", "on", 1)), raw.get((model, 1))
        if served is None or base is None or not served.requests:
            continue
        limit = LATENCY_FACTOR * base.p50_ms + LATENCY_SLACK_MS
        latency.append(
            {
                "model": model,
                "runtime": base.runtime,
                "grpc_p50_ms": served.p50_ms,
                "raw_p50_ms": base.p50_ms,
                "ratio": served.p50_ms / base.p50_ms if base.p50_ms else None,
                "limit_ms": limit,
                "passed": served.p50_ms <= limit,
            }
        )
    speedup = []
    top = BATCHING_CONCURRENCY if BATCHING_CONCURRENCY in settings.concurrency else None
    if top is None and settings.concurrency:
        top = settings.concurrency[-1]
    for model in settings.models:
        for protocol in settings.protocols:
            on, off = (
                by_key.get((model, protocol, "on", top)),
                by_key.get((model, protocol, "off", top)),
            )
            if on is None or off is None or not off.throughput_rps:
                continue
            ratio = on.throughput_rps / off.throughput_rps
            speedup.append(
                {
                    "model": model,
                    "protocol": protocol,
                    "concurrency": top,
                    "batching_on_rps": on.throughput_rps,
                    "batching_off_rps": off.throughput_rps,
                    "ratio": ratio,
                    "passed": ratio >= BATCHING_SPEEDUP,
                    # Why the ratio is what it is: batching can only save the
                    # model's share of the CPU a request costs.
                    "server_cpu_us_on": on.server_cpu_us,
                    "server_cpu_us_off": off.server_cpu_us,
                    "client_cpu_us_off": off.client_cpu_us,
                    "raw_us_per_request": _raw_us(raw.get((model, 1))),
                }
            )
    return {
        "latency_c1": {
            "rule": f"gRPC p50 <= {LATENCY_FACTOR} x raw p50 + {LATENCY_SLACK_MS:g} ms "
            "(concurrency 1, batching on)",
            "figures": latency,
        },
        "batching_speedup": {
            "rule": f"throughput batching on / off >= {BATCHING_SPEEDUP:g} (concurrency {top})",
            "figures": speedup,
        },
    }


# -- output --------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    machine = report["machine"]
    table = Table(
        title=f"modelplane bench on {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"batch 1 per request",
        caption="x raw: over raw in-process runtime at the same concurrency "
        "(req/s: higher is better; p50: lower is better)",
    )
    for column, justify in (
        ("model", "left"),
        ("target", "left"),
        ("protocol", "left"),
        ("batching", "left"),
        ("conc", "right"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("req/s x raw", "right"),
        ("p50 x raw", "right"),
        ("server CPU us/req", "right"),
        ("client CPU us/req", "right"),
        ("errors", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    order = {"in-process": 0, "grpc": 1, "http": 2}
    cells = sorted(
        report["results"],
        key=lambda c: (c["model"], order[c["protocol"]], c["batching"], c["concurrency"]),
    )
    for c in cells:
        table.add_row(
            c["model"],
            c["runtime"] if c["target"] == RAW else SERVED,
            c["protocol"],
            c["batching"],
            str(c["concurrency"]),
            f"{c['throughput_rps']:.0f}",
            _fmt(c["p50_ms"], 3),
            _fmt(c["p99_ms"], 3),
            _fmt(c["throughput_vs_raw"]),
            _fmt(c["p50_vs_raw"]),
            _fmt(c["server_cpu_us"], 0),
            _fmt(c["client_cpu_us"], 0),
            str(c["errors"]),
        )
    console.print(table)

    figures = report["acceptance"]
    console.print(f"\n[bold](a) latency overhead[/]: {figures['latency_c1']['rule']}")
    if not figures["latency_c1"]["figures"]:
        console.print("  not measured (needs --protocols grpc and concurrency 1)")
    for f in figures["latency_c1"]["figures"]:
        console.print(
            f"  {f['model']:<14} gRPC p50 {f['grpc_p50_ms']:.3f} ms vs raw {f['runtime']} "
            f"{f['raw_p50_ms']:.3f} ms = {_fmt(f['ratio'])}x (limit {f['limit_ms']:.3f} ms) "
            + ("[green]PASS[/]" if f["passed"] else "[red]FAIL[/]")
        )
    console.print(f"[bold](b) batching[/]: {figures['batching_speedup']['rule']}")
    if not figures["batching_speedup"]["figures"]:
        console.print("  not measured (needs the batching-off server: drop --no-unbatched)")
    for f in figures["batching_speedup"]["figures"]:
        console.print(
            f"  {f['model']:<14} {f['protocol']:<5} {f['batching_on_rps']:.0f} vs "
            f"{f['batching_off_rps']:.0f} req/s = {f['ratio']:.2f}x "
            + ("[green]PASS[/]" if f["passed"] else "[red]FAIL[/]")
            + f"; CPU per request off: server {_fmt(f['server_cpu_us_off'], 0)} us + "
            f"load generator {_fmt(f['client_cpu_us_off'], 0)} us, of which the model "
            f"{_fmt(f['raw_us_per_request'], 0)} us"
        )
    errors = [c for c in report["results"] if c["errors"]]
    for c in errors:
        console.print(
            f"[yellow]{c['model']} {c['protocol']} batching {c['batching']} "
            f"c={c['concurrency']}: {c['errors']} errors, first: {c['first_error']}[/]"
        )


def write_csv(report: dict[str, Any], path: Path) -> None:
    rows = report["results"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of `modelplane bench`; 0 when it measured (whatever the figures), 2 on errors."""
    import importlib.util

    if importlib.util.find_spec("tritonclient") is None:
        print("modelplane bench needs tritonclient[all] (the 'test' extra)", file=sys.stderr)
        return 2
    if "kserve" in sys.modules:
        # See the module docstring: both register the `inference.*` protobufs.
        print("modelplane bench must not run in a process that imported kserve", file=sys.stderr)
        return 2
    from rich.console import Console

    # Off a terminal (CI logs, pipes) rich assumes 80 columns and would cut
    # the table's numbers; a fixed width keeps every figure readable.
    console = Console() if sys.stdout.isatty() else Console(width=150)
    try:
        settings = BenchSettings.from_args(args)
        report = run(settings, console)
    except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"modelplane bench: {exc}", file=sys.stderr)
        return 2
    print_report(report, console)
    if settings.csv:
        write_csv(report, settings.csv)
    if settings.json:
        write_json(report, settings.json)
    return 0
