"""What a bench run found: ratios, the acceptance figures, the table, CSV and JSON."""

from __future__ import annotations

import csv
import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from predictors.bench.measure import RAW, SERVED, Cell
from predictors.bench.settings import BenchSettings

# Acceptance figures (see predictors/bench/__init__.py and README).
LATENCY_FACTOR = 1.3
LATENCY_SLACK_MS = 1.0
BATCHING_SPEEDUP = 2.0
BATCHING_CONCURRENCY = 16


def machine() -> dict[str, Any]:
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


def settings_doc(settings: BenchSettings) -> dict[str, Any]:
    doc = asdict(settings)
    for key in ("model_store", "csv", "json", "server_log_dir"):
        doc[key] = None if doc[key] is None else str(doc[key])
    return doc


def add_ratios(results: list[Cell]) -> None:
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
    top = (
        BATCHING_CONCURRENCY
        if BATCHING_CONCURRENCY in settings.concurrency
        else settings.concurrency[-1]
    )
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

    def show(title: str, key: str, unmeasured: str, line: Callable[[dict[str, Any]], str]) -> None:
        console.print(f"[bold]{title}[/]: {figures[key]['rule']}")
        if not figures[key]["figures"]:
            console.print(f"  not measured ({unmeasured})")
        for f in figures[key]["figures"]:
            console.print("  " + line(f) + (" [green]PASS[/]" if f["passed"] else " [red]FAIL[/]"))

    console.print()
    show(
        "(a) latency overhead",
        "latency_c1",
        "needs --protocols grpc and concurrency 1",
        lambda f: (
            f"{f['model']:<14} gRPC p50 {f['grpc_p50_ms']:.3f} ms vs raw {f['runtime']} "
            f"{f['raw_p50_ms']:.3f} ms = {_fmt(f['ratio'])}x (limit {f['limit_ms']:.3f} ms)"
        ),
    )
    show(
        "(b) batching",
        "batching_speedup",
        "needs the batching-off server: drop --no-unbatched",
        lambda f: (
            f"{f['model']:<14} {f['protocol']:<5} {f['batching_on_rps']:.0f} vs "
            f"{f['batching_off_rps']:.0f} req/s = {f['ratio']:.2f}x; CPU per request off: "
            f"server {_fmt(f['server_cpu_us_off'], 0)} us + load generator "
            f"{_fmt(f['client_cpu_us_off'], 0)} us, of which the model "
            f"{_fmt(f['raw_us_per_request'], 0)} us"
        ),
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
