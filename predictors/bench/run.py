"""One `modelplane bench` run: build the store, start the servers, measure every cell, report."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from predictors.bench.baseline import start_kserve_baseline
from predictors.bench.clients import measure_served
from predictors.bench.compute_model import bench_store
from predictors.bench.drift_cost import (
    add_unprofiled_twins,
    alternate,
    in_process_costs,
    served_costs,
    twin_cells,
)
from predictors.bench.figures import acceptance, add_ratios, batching_decisions, record_batching
from predictors.bench.inputs import load_inputs
from predictors.bench.measure import KSERVE, RAW, SERVED, Cell, combine, measure_raw
from predictors.bench.raw import raw_runner
from predictors.bench.report import machine, print_report, settings_doc, write_csv, write_json
from predictors.bench.settings import BenchSettings
from predictors.local_server import LocalServer, start_local_server

SERVER_START_TIMEOUT_S = 180.0
SERVER_STOP_TIMEOUT_S = 30.0
# An idle server's memory is read this long after it turned ready: the
# warm-up run's buffers are allocated by then, and nothing else is running.
IDLE_SETTLE_S = 1.0


def _serve_args(settings: BenchSettings, batching: str, models: list[str]) -> list[str]:
    args = [
        "--models", ",".join(models), "--device", "cpu",
        "--threads", str(settings.threads), "--batching", batching, "--log_level", "WARNING",
    ]  # fmt: skip
    if batching == "on":
        args += [
            "--max_batch_size", str(settings.max_batch_size),
            "--max_queue_delay_ms", str(settings.max_queue_delay_ms),
        ]  # fmt: skip
    return args + settings.serve_args


@contextmanager
def local_server(
    store: Path, settings: BenchSettings, batching: str, log_dir: Path, models: list[str]
) -> Iterator[LocalServer]:
    # Not waited for here: the servers load their models at the same time.
    server = start_local_server(store, log_dir, *_serve_args(settings, batching, models), wait=None)
    try:
        yield server
    finally:
        server.stop(SERVER_STOP_TIMEOUT_S)


@contextmanager
def kserve_server(model_file: Path, model: str, log_dir: Path) -> Iterator[LocalServer]:
    server = start_kserve_baseline(model_file, model, log_dir, wait=None)
    try:
        yield server
    finally:
        server.stop(SERVER_STOP_TIMEOUT_S)


def idle_rss_mib(server: LocalServer) -> float:
    import psutil

    return float(psutil.Process(server.process.pid).memory_info().rss) / 2**20


def measure_startup(
    store: Path, settings: BenchSettings, model: str, log_dir: Path
) -> dict[str, Any]:
    """One `modelplane serve` for `model` alone, as a pod runs it: cold start to ready, idle RSS."""
    start = time.perf_counter()
    server = start_local_server(store, log_dir, *_serve_args(settings, "on", [model]), wait=None)
    try:
        server.wait("ready", SERVER_START_TIMEOUT_S)
        ready_s = time.perf_counter() - start
        time.sleep(IDLE_SETTLE_S)
        idle = idle_rss_mib(server)
        # What a Prometheus scrape adds (whatever /metrics loads on first use).
        scrape(server)
        return {
            "model": model,
            "ready_s": ready_s,
            "idle_rss_mib": idle,
            "scraped_rss_mib": idle_rss_mib(server),
        }
    finally:
        server.stop(SERVER_STOP_TIMEOUT_S)


def scrape(server: LocalServer) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://{server.http_url}/metrics", timeout=60) as response:
        response.read()


def plan(
    settings: BenchSettings,
    engines: dict[str, str],
    kserve_models: list[str],
    twins: dict[str, str] | None = None,
) -> list[Cell]:
    """Every cell of one round, interleaved: per model and concurrency, the in-process
    runtime, then each protocol's modelplane servers, the model's twin without a
    drift profile (drift_cost.py) and KServe predictor, back to back.

    So the figures that are compared (served over in-process, modelplane over
    KServe, batching on over off, with a profile over without) are measured
    seconds apart, not minutes: a shared machine's speed drifts less in between.
    """
    modes = ["on", "off"] if settings.unbatched else ["on"]
    cells = []
    for name in settings.models:
        for c in settings.concurrency:
            cells.append(Cell(name, RAW, engines[name], "in-process", "-", c))
            for protocol in settings.protocols:
                for m in modes:
                    cells.append(Cell(name, SERVED, engines[name], protocol, m, c))
                    if m == "on":  # the twin right after: the pair is compared
                        cells += twin_cells(name, twins or {}, engines[name], protocol, c)
                if name in kserve_models:
                    cells.append(Cell(name, KSERVE, "onnxruntime", protocol, "-", c))
    return cells


def run(settings: BenchSettings, console: Any) -> dict[str, Any]:
    """Measure everything asked; return the report (also what --json writes)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from predictors.formats import get_format
    from predictors.model_store import discover, newest
    from predictors.runtimes import available_cpus

    measured: dict[tuple[str, str, str, str, int], list[Cell]] = {}
    startup: list[dict[str, Any]] = []
    servers_idle: list[dict[str, Any]] = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mp-bench-")))
        log_dir = settings.server_log_dir or work / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        console.print("[bold]modelplane bench[/]: building the store (compute models: export)")
        store = bench_store(settings.model_store, settings.models, work / "store")
        # The versions the servers serve: the store's own discovery and order.
        found = discover(store, settings.models)
        model_dirs = {name: newest(found, name).path for name in settings.models}
        metas = {name: newest(found, name).read_metadata() for name in settings.models}
        inputs = {name: load_inputs(meta) for name, meta in metas.items()}
        engines = {name: get_format(meta.format).engine for name, meta in metas.items()}
        onnx_models = [n for n in settings.models if metas[n].format == "onnx"]
        kserve_models = onnx_models if settings.kserve else []
        modes = ["on", "off"] if settings.unbatched else ["on"]
        twins = (
            add_unprofiled_twins(store, settings.models, metas, model_dirs)
            if settings.drift
            else {}
        )
        inputs.update({twin: inputs[name] for twin, name in twins.items()})
        cells = plan(settings, engines, kserve_models, twins)
        per_cell = settings.warmup + settings.duration
        console.print(
            f"{len(cells)} cells x {settings.rounds} round(s) of {settings.duration:g}s "
            f"(+{settings.warmup:g}s warm-up), about "
            f"{len(cells) * settings.rounds * per_cell:.0f}s of load on {available_cpus()} CPUs"
        )
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
        starts = len(settings.models) if settings.startup else 0
        task = progress.add_task("starting", total=len(cells) * settings.rounds + starts)

        # One server per model, alone on the machine, as a pod would run it.
        if settings.startup:
            for name in settings.models:
                progress.update(task, description=f"cold start {name}")
                startup.append(measure_startup(store, settings, name, log_dir))
                progress.advance(task)

        # The load servers start (and load) at once, then are driven one at a
        # time; an idle server costs memory, not CPU.
        progress.update(task, description="starting servers")
        served = {"on": [*settings.models, *twins], "off": settings.models}
        servers = {
            mode: stack.enter_context(local_server(store, settings, mode, log_dir, served[mode]))
            for mode in modes
        }
        baselines = {
            name: stack.enter_context(
                kserve_server(model_dirs[name] / metas[name].model_file, name, log_dir)
            )
            for name in kserve_models
        }
        for server in [*servers.values(), *baselines.values()]:
            server.wait("ready", SERVER_START_TIMEOUT_S)
        time.sleep(IDLE_SETTLE_S)
        for mode, server in servers.items():
            idle = idle_rss_mib(server)
            # The first scrape's one-time cost stays out of the first cell.
            scrape(server)
            servers_idle.append(
                {"server": f"modelplane --batching {mode}", "models": len(served[mode]),
                 "idle_rss_mib": idle, "scraped_rss_mib": idle_rss_mib(server)}
            )  # fmt: skip
        for name, server in baselines.items():
            servers_idle.append(
                {"server": f"kserve {name}", "models": 1, "idle_rss_mib": idle_rss_mib(server)}
            )
        runners = {
            name: raw_runner(model_dirs[name], metas[name], settings.threads)
            for name in settings.models
        }

        async def drive_all() -> None:
            for round_ in range(settings.rounds):
                for template in alternate(cells, twins, round_):
                    cell = replace(template)
                    progress.update(
                        task,
                        description=f"round {round_ + 1}: {cell.model} {cell.target} "
                        f"{cell.protocol} {cell.batching} c={cell.concurrency}",
                    )
                    if cell.target == RAW:
                        done = measure_raw(
                            runners[cell.model], inputs[cell.model], cell,
                            settings.warmup, settings.duration,
                        )  # fmt: skip
                    else:
                        kserve = cell.target == KSERVE
                        server = baselines[cell.model] if kserve else servers[cell.batching]
                        done = await measure_served(
                            server, cell.protocol, cell.model, inputs[cell.model], cell,
                            settings.warmup, settings.duration, batches=not kserve,
                        )  # fmt: skip
                    measured.setdefault(cell.key, []).append(done)
                    progress.advance(task)

        asyncio.run(drive_all())
        progress.update(task, description="drift counting in process")
        counting = in_process_costs(
            {name: metas[name] for name in settings.models if settings.drift},
            inputs,
            settings.max_batch_size,
        )
        progress.update(task, description="done")

    combined = [combine(rounds) for rounds in measured.values()]
    # The twins' cells are the drift comparison's, not models of the table.
    results = [c for c in combined if c.model not in twins]
    add_ratios(results)
    decisions = batching_decisions(results, settings)
    recorded = record_batching(decisions, settings) if settings.record_batching else []
    return {
        "machine": machine(),
        "settings": settings_doc(settings),
        "results": [asdict(c) for c in results],
        "startup": startup,
        "servers_idle": servers_idle,
        "batching_decisions": decisions,
        "batching_recorded": recorded,
        "acceptance": acceptance(results, startup, metas, decisions, settings),
        "drift_cost": {
            "served": served_costs(combined, twins),
            "in_process": counting,
        },
    }


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of `modelplane bench`; 0 when it measured (whatever the figures), 2 on errors."""
    import importlib.util

    if importlib.util.find_spec("tritonclient") is None:
        print("modelplane bench needs tritonclient[all] (the 'test' extra)", file=sys.stderr)
        return 2
    from rich.console import Console

    # Off a terminal (CI logs, pipes) rich assumes 80 columns and would cut
    # the table's numbers; a fixed width keeps every figure readable.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        settings = BenchSettings.from_args(args)
        if settings.kserve and importlib.util.find_spec("kserve") is None:
            raise ValueError("the naive KServe predictor needs the kserve SDK: or pass --no-kserve")
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
