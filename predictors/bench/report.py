"""What a bench run found, for people and for files: the table, the figures, CSV and JSON."""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from predictors.bench.drift_cost import print_drift_cost
from predictors.bench.figures import BATCHING_HELPS
from predictors.bench.measure import KSERVE, RAW, SERVED
from predictors.bench.settings import BenchSettings


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


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    machine = report["machine"]
    table = Table(
        title=f"modelplane bench on {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"batch 1 per request"
        + (f", median of {rounds} rounds" if (rounds := report["settings"]["rounds"]) > 1 else ""),
        caption="x raw: over the in-process runtime at the same concurrency (req/s: higher "
        "is better; p50: lower is better); server CPU: % of one core; rows/run: mean rows "
        "per model run (batch size)",
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
        ("server CPU %", "right"),
        ("server CPU us/req", "right"),
        ("client CPU us/req", "right"),
        ("rows/run", "right"),
        ("errors", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    order = {"in-process": 0, "grpc": 1, "http": 2}
    targets = {RAW: 0, SERVED: 1, KSERVE: 2}
    cells = sorted(
        report["results"],
        key=lambda c: (
            c["model"], order[c["protocol"]], targets[c["target"]], c["batching"], c["concurrency"]
        ),
    )  # fmt: skip
    for c in cells:
        table.add_row(
            c["model"],
            c["runtime"] if c["target"] == RAW else c["target"],
            c["protocol"],
            c["batching"],
            str(c["concurrency"]),
            f"{c['throughput_rps']:.0f}",
            _fmt(c["p50_ms"], 3),
            _fmt(c["p99_ms"], 3),
            _fmt(c["throughput_vs_raw"]),
            _fmt(c["p50_vs_raw"]),
            _fmt(c["server_cpu_percent"], 0),
            _fmt(c["server_cpu_us"], 0),
            _fmt(c["client_cpu_us"], 0),
            _fmt(c["batch_rows_mean"], 1),
            str(c["errors"]),
        )
    console.print(table)

    if report["startup"] or report["servers_idle"]:
        console.print()
        console.print("[bold]servers[/]: cold start to ready and idle RSS")
        for entry in report["startup"]:
            console.print(
                f"  modelplane serve --models {entry['model']:<13} ready in "
                f"{entry['ready_s']:.2f} s, idle RSS {entry['idle_rss_mib']:.0f} MiB, "
                f"{entry['scraped_rss_mib']:.0f} MiB after one /metrics scrape"
            )
        for entry in report["servers_idle"]:
            scraped = entry.get("scraped_rss_mib")
            console.print(
                f"  {entry['server']} ({entry['models']} models): idle RSS "
                f"{entry['idle_rss_mib']:.0f} MiB"
                + (f", {scraped:.0f} MiB after one /metrics scrape" if scraped else "")
            )

    console.print()
    console.print(
        f"[bold]batching[/]: on over off at the highest concurrency; on when >= "
        f"{BATCHING_HELPS:g}x (--record-batching writes it to metadata.json)"
    )
    if not report["batching_decisions"]:
        console.print("  not measured (needs the batching-off server: drop --no-unbatched)")
    for d in report["batching_decisions"]:
        per_protocol = ", ".join(
            f"{p} {r:.2f}x ({_fmt(d['batch_rows_on'].get(p), 1)} rows/run)"
            for p, r in d["on_over_off"].items()
        )
        console.print(
            f"  {d['model']:<13} c={d['concurrency']}: {per_protocol}: "
            f"{d['speedup']:.2f}x -> batching {'on' if d['enabled'] else 'off'}"
        )
    for entry in report["batching_recorded"]:
        console.print(
            f"  recorded in {entry['model']}:{entry['version']}/metadata.json: "
            f"enabled {str(entry['enabled']).lower()}"
        )
    print_drift_cost(report, console)

    console.print()
    console.print("[bold]figures[/] (issue 15), each from this run:")
    for f in report["acceptance"]:
        value = f["value"]
        shown = "-" if value is None else f"{value:.3f}"
        extra = ""
        if f["figure"] in ("grpc_vs_kserve", "grpc_vs_in_process"):
            other = f.get("kserve_rps", f.get("in_process_rps"))
            extra = (
                f" ({f['modelplane_rps']:.0f} vs {other:.0f} req/s, batching {f['batching']}: "
                f"{f['batching_decided_by']})"
            )
        elif f["figure"] == "grpc_p50_c1":
            extra = (
                f" ms (in-process {f['in_process_p50_ms']:.3f} ms, limit {f['limit']:.3f}, "
                f"batching {f['batching']})"
            )
        verdict = "[green]PASS[/]" if f["passed"] else "[red]FAIL[/]"
        console.print(f"  {f['model']:<13} {f['rule']}: {shown}{extra} {verdict}")

    errors = [c for c in report["results"] if c["errors"]]
    for c in errors:
        console.print(
            f"[yellow]{c['model']} {c['target']} {c['protocol']} batching {c['batching']} "
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
