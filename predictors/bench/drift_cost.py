"""What counting inputs for drift costs a request: with and without a reference profile.

Both measured in the same run (predictors.drift counts each batch the model
runs; a model without a profile counts nothing):
- served: each profiled model is also served as `<name>-noprofile`, the same
  files with the profile taken out of metadata.json, by the same batching-on
  server. Its cells run right after the profiled model's (same protocol, same
  concurrency), so the difference in server CPU per request is the cost of
  counting, next to the noise of a shared machine (say how many rounds);
- in process: `DriftMonitor.count` timed on the bench's own requests (batch
  1, what every unbatched request pays) and on batches of `--max_batch_size`
  rows (what a full dynamic batch pays once, for all its requests), and one
  scrape's PSI of every feature (`snapshot`): the counting alone, without a
  server around it.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictors.bench.measure import SERVED, Cell

if TYPE_CHECKING:
    import numpy as np

    from predictors.metadata import ModelMetadata

TWIN_SUFFIX = "-noprofile"
#: calls per timing, and timings (their median is reported)
CALLS = 2000
REPEATS = 5


def add_unprofiled_twins(
    store: Path, models: list[str], metas: dict[str, ModelMetadata], model_dirs: dict[str, Path]
) -> dict[str, str]:
    """`<name>-noprofile` beside each profiled model in the bench's store; twin -> model."""
    from predictors.metadata import METADATA_FILE

    twins = {}
    for name in models:
        meta = metas[name]
        if meta.drift_profile is None:
            continue
        twin = f"{name}{TWIN_SUFFIX}"
        target = store / twin / meta.version
        target.mkdir(parents=True)
        # Copies, not links: the server refuses files that lead out of their folder.
        for item in model_dirs[name].iterdir():
            if item.is_file() and item.name != METADATA_FILE:
                shutil.copyfile(item, target / item.name)
        meta_twin = type(meta).from_dict({**meta.to_dict(), "name": twin})
        meta_twin.drift_profile = None
        meta_twin.write(target)
        twins[twin] = name
    return twins


def twin_cells(name: str, twins: dict[str, str], engine: str, protocol: str, c: int) -> list[Cell]:
    """The unprofiled twin's cell, to run right after `name`'s batching-on cell."""
    return [Cell(t, SERVED, engine, protocol, "on", c) for t, base in twins.items() if base == name]


def alternate(cells: list[Cell], twins: dict[str, str], round_: int) -> list[Cell]:
    """The round's cells; in odd rounds each twin runs before its profiled model's cell.

    So neither side of the comparison always runs second (warmer caches, a
    neighbour's burst ending), which --rounds then averages out.
    """
    if round_ % 2 == 0 or not twins:
        return cells
    out = list(cells)
    for i, cell in enumerate(out):
        if cell.model in twins and i > 0:
            before = out[i - 1]
            if (before.model, before.protocol, before.batching, before.concurrency) == (
                twins[cell.model],
                cell.protocol,
                "on",
                cell.concurrency,
            ):
                out[i - 1], out[i] = cell, before
    return out


def served_costs(results: list[Cell], twins: dict[str, str]) -> list[dict[str, Any]]:
    """Per profiled model, protocol and concurrency: server CPU per request with and without."""
    by_key = {c.key: c for c in results}
    costs = []
    for twin, name in twins.items():
        for cell in results:
            if cell.model != twin:
                continue
            profiled = by_key.get((name, SERVED, cell.protocol, "on", cell.concurrency))
            if profiled is None or profiled.server_cpu_us is None or cell.server_cpu_us is None:
                continue
            costs.append(
                {
                    "model": name,
                    "protocol": cell.protocol,
                    "concurrency": cell.concurrency,
                    "server_cpu_us_with": profiled.server_cpu_us,
                    "server_cpu_us_without": cell.server_cpu_us,
                    "server_cpu_us_difference": profiled.server_cpu_us - cell.server_cpu_us,
                    "throughput_with_over_without": (
                        profiled.throughput_rps / cell.throughput_rps
                        if cell.throughput_rps
                        else None
                    ),
                    "batch_rows_with": profiled.batch_rows_mean,
                    "rounds": cell.rounds,
                }
            )
    return costs


def _median_us(call: Any) -> float:
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(CALLS):
            call()
        timings.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(timings)


def in_process_costs(
    metas: dict[str, ModelMetadata],
    inputs: dict[str, list[dict[str, np.ndarray]]],
    batch_rows: int,
) -> list[dict[str, Any]]:
    """`DriftMonitor.count` per call (batch 1 and `batch_rows`), and one scrape's PSI."""
    import numpy as np

    from predictors.drift import DriftMonitor

    costs = []
    for name, meta in metas.items():
        if meta.drift_profile is None:
            continue
        monitor = DriftMonitor(meta.drift_profile, meta.inputs)
        requests = itertools.cycle(inputs[name])
        pool = inputs[name]
        batch = {
            key: np.ascontiguousarray(
                np.concatenate([pool[i % len(pool)][key] for i in range(batch_rows)])
            )
            for key in pool[0]
        }
        costs.append(
            {
                "model": name,
                "features": sum(len(p.features) for p in meta.drift_profile.inputs.values()),
                "count_us_batch_1": _median_us(lambda m=monitor, r=requests: m.count(next(r))),
                "batch_rows": batch_rows,
                "count_us_batch_n": _median_us(lambda m=monitor, b=batch: m.count(b)),
                "scrape_us": _median_us(monitor.snapshot),
            }
        )
    return costs


def print_drift_cost(report: dict[str, Any], console: Any) -> None:
    """The drift section of the printed report."""
    drift = report.get("drift_cost")
    if drift is None:
        return
    console.print()
    console.print(
        "[bold]drift counting[/]: what a reference profile costs (a model without one counts "
        "nothing)"
    )
    if not drift["in_process"]:
        console.print("  not measured (no model with a drift profile, or --no-drift)")
    for e in drift["in_process"]:
        console.print(
            f"  {e['model']:<13} in process, {e['features']} features: "
            f"{e['count_us_batch_1']:.1f} us per batch of 1, {e['count_us_batch_n']:.1f} us "
            f"per batch of {e['batch_rows']} rows; a scrape's PSI {e['scrape_us']:.0f} us"
        )
    for e in drift["served"]:
        ratio = e["throughput_with_over_without"]
        console.print(
            f"  {e['model']:<13} served {e['protocol']} c={e['concurrency']}: server CPU "
            f"{e['server_cpu_us_with']:.0f} us/req with the profile, "
            f"{e['server_cpu_us_without']:.0f} without ({e['server_cpu_us_difference']:+.0f} "
            f"us/req; req/s x{'-' if ratio is None else f'{ratio:.2f}'})"
        )
    if drift["served"]:
        rounds = drift["served"][0]["rounds"]
        console.print(
            f"  (served: {'one round' if rounds == 1 else f'median of {rounds} rounds'}; on a "
            "shared machine a difference smaller than the in-process cost is noise)"
        )
