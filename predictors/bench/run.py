"""One `modelplane bench` run: start the servers, measure every cell, report."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from predictors.bench.clients import measure_served
from predictors.bench.inputs import load_inputs
from predictors.bench.measure import RAW, SERVED, Cell, measure_raw
from predictors.bench.raw import raw_runner
from predictors.bench.report import (
    acceptance,
    add_ratios,
    machine,
    print_report,
    settings_doc,
    write_csv,
    write_json,
)
from predictors.bench.settings import BenchSettings
from predictors.local_server import LocalServer, start_local_server

SERVER_START_TIMEOUT_S = 180.0
SERVER_STOP_TIMEOUT_S = 30.0


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


def run(settings: BenchSettings, console: Any) -> dict[str, Any]:
    """Measure everything asked; return the report (also what --json writes)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from predictors.formats import get_format
    from predictors.model_store import discover, newest
    from predictors.runtimes import available_cpus

    # The versions the server serves: the store's own discovery and order.
    found = discover(settings.model_store, settings.models)
    model_dirs = {name: newest(found, name).path for name in settings.models}
    metas = {name: newest(found, name).read_metadata() for name in settings.models}
    inputs = {name: load_inputs(meta) for name, meta in metas.items()}
    modes = ["on", "off"] if settings.unbatched else ["on"]
    served_cells = [
        Cell(name, SERVED, get_format(metas[name].format).engine, protocol, mode, c)
        for mode in modes
        for name in settings.models
        for protocol in settings.protocols
        for c in settings.concurrency
    ]
    raw_cells = [
        Cell(name, RAW, get_format(metas[name].format).engine, "in-process", "-", c)
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

    add_ratios(results)
    return {
        "machine": machine(),
        "settings": settings_doc(settings),
        "results": [asdict(c) for c in results],
        "acceptance": acceptance(results, settings),
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
