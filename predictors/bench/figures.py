"""What a bench run's cells add up to: ratios, the batching decision, issue 15's figures.

- add_ratios: each served cell over the in-process runtime at its concurrency;
- batching_decisions: per model, batching on over off at the highest
  concurrency, and whether it pays; record_batching writes that into the
  store's metadata.json (`--record-batching`);
- acceptance: the figures, each a ratio (or a limit) from the same run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from predictors.bench.measure import KSERVE, RAW, SERVED, Cell
from predictors.bench.settings import BenchSettings

# The figures of issue 15 (see predictors/bench/__init__.py and README).
FIGURE_CONCURRENCY = 8
#: compute-bound models: gRPC at c8 over the naive KServe predictor, and over in-process
COMPUTE_VS_KSERVE = 1.5
COMPUTE_VS_IN_PROCESS = 0.85
#: compute-bound models: c1 gRPC p50 <= factor x (in-process p50 + slack)
LATENCY_FACTOR = 1.3
LATENCY_SLACK_MS = 1.0
#: overhead-bound models: gRPC at c8 over the naive KServe predictor, and c1 p50 over in-process
OVERHEAD_VS_KSERVE = 1.5
OVERHEAD_P50_MS = 1.0
#: one `modelplane serve` per model
IDLE_RSS_MIB = 200.0
READY_S = 2.0
#: batching goes on when it serves at least this many times the requests without it
BATCHING_HELPS = 1.0


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


def settings_modes(settings: BenchSettings) -> list[str]:
    return ["on", "off"] if settings.unbatched else ["on"]


def figure_concurrency(settings: BenchSettings) -> int:
    """8 when measured; else the highest concurrency asked stands in for it."""
    if FIGURE_CONCURRENCY in settings.concurrency:
        return FIGURE_CONCURRENCY
    return settings.concurrency[-1]


def batching_decisions(results: list[Cell], settings: BenchSettings) -> list[dict[str, Any]]:
    """Per model: batching on over off at the highest concurrency, per protocol, and the verdict."""
    import math

    from predictors.runtimes import available_cpus

    by_key = {c.key: c for c in results}
    top = settings.concurrency[-1]
    decisions = []
    for model in settings.models:
        ratios: dict[str, float] = {}
        rows: dict[str, float | None] = {}
        for protocol in settings.protocols:
            on = by_key.get((model, SERVED, protocol, "on", top))
            off = by_key.get((model, SERVED, protocol, "off", top))
            if on is None or off is None or not off.throughput_rps or not on.throughput_rps:
                continue
            ratios[protocol] = on.throughput_rps / off.throughput_rps
            rows[protocol] = on.batch_rows_mean
        if not ratios:
            continue
        speedup = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
        decisions.append(
            {
                "model": model,
                "concurrency": top,
                "cpus": available_cpus(),
                "on_over_off": ratios,
                "batch_rows_on": rows,
                "speedup": speedup,
                "enabled": speedup >= BATCHING_HELPS,
            }
        )
    return decisions


def record_batching(
    decisions: list[dict[str, Any]], settings: BenchSettings
) -> list[dict[str, Any]]:
    """Write each decision into the newest version's metadata.json (built models excepted)."""
    from dataclasses import replace

    from predictors.bench.compute_model import COMPUTE_MODELS
    from predictors.metadata import BatchingMeasurement
    from predictors.model_store import discover, newest

    names = [d["model"] for d in decisions if d["model"] not in COMPUTE_MODELS]
    if not names:
        return []
    found = discover(settings.model_store, names)
    recorded = []
    for decision in decisions:
        if decision["model"] not in names:
            continue
        stored = newest(found, decision["model"])
        meta = stored.read_metadata()
        meta.batching = replace(
            meta.batching,
            enabled=decision["enabled"],
            measured=BatchingMeasurement(
                speedup=round(decision["speedup"], 3),
                concurrency=decision["concurrency"],
                cpus=decision["cpus"],
                protocols=tuple(decision["on_over_off"]),
            ),
        )
        _write_metadata(meta, stored.path)
        recorded.append(
            {"model": meta.name, "version": meta.version, "enabled": decision["enabled"]}
        )
    return recorded


def _write_metadata(meta: Any, folder: Path) -> None:
    """metadata.json replaced in one rename: a server reading it sees the old or the new file."""
    from predictors.metadata import METADATA_FILE

    staging = folder / f".{METADATA_FILE}.new"
    # The text ModelMetadata.write writes, into a staging file first.
    staging.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n")
    os.replace(staging, folder / METADATA_FILE)


def _figure(model: str, name: str, rule: str, value: float | None, limit: float,
            passed: bool | None, **details: Any) -> dict[str, Any]:  # fmt: skip
    return {"model": model, "figure": name, "rule": rule, "value": value, "limit": limit,
            "passed": passed, **details}  # fmt: skip


def figure_mode(
    meta: Any, decision: dict[str, Any] | None, settings: BenchSettings
) -> tuple[str, str]:
    """The batching mode a model is served with, and what decided it.

    A measurement recorded in metadata.json decides, as it does for
    `modelplane serve --batching model`; a model without one gets this run's
    decision, which is what `--record-batching` would record for it.
    """
    if meta.batching.measured is not None:
        mode, source = ("on" if meta.batching.enabled else "off"), "metadata.json"
    elif decision is not None:
        mode, source = ("on" if decision["enabled"] else "off"), "this run"
    else:
        mode, source = ("on" if meta.batching.enabled else "off"), "metadata.json default"
    if mode not in settings_modes(settings):
        return "on", "the only server measured"
    return mode, source


def acceptance(
    results: list[Cell],
    startup: list[dict[str, Any]],
    metas: dict[str, Any],
    decisions: list[dict[str, Any]],
    settings: BenchSettings,
) -> list[dict[str, Any]]:
    """Issue 15's figures, each a ratio (or a limit) from this run, with pass/fail.

    Served figures use the batching mode the model is served with by default
    (`figure_mode`): batching where it was measured to pay, else none.
    """
    from predictors.bench.compute_model import COMPUTE_MODELS

    by_key = {c.key: c for c in results}
    by_model = {d["model"]: d for d in decisions}
    top = figure_concurrency(settings)
    figures: list[dict[str, Any]] = []
    for model in settings.models:
        mode, decided_by = figure_mode(metas[model], by_model.get(model), settings)
        compute = model in COMPUTE_MODELS
        raw1, raw_top = (
            by_key.get((model, RAW, "in-process", "-", 1)),
            by_key.get((model, RAW, "in-process", "-", top)),
        )
        grpc1 = by_key.get((model, SERVED, "grpc", mode, 1))
        grpc_top = by_key.get((model, SERVED, "grpc", mode, top))
        kserve_top = by_key.get((model, KSERVE, "grpc", "-", top))
        common = {"batching": mode, "batching_decided_by": decided_by, "concurrency": top}
        limit_kserve = COMPUTE_VS_KSERVE if compute else OVERHEAD_VS_KSERVE
        if grpc_top and kserve_top and kserve_top.throughput_rps:
            ratio = grpc_top.throughput_rps / kserve_top.throughput_rps
            figures.append(
                _figure(model, "grpc_vs_kserve", f"gRPC req/s at c{top} >= {limit_kserve:g} x "
                        "the naive KServe predictor", ratio, limit_kserve, ratio >= limit_kserve,
                        modelplane_rps=grpc_top.throughput_rps,
                        kserve_rps=kserve_top.throughput_rps, **common)
            )  # fmt: skip
        if compute and grpc_top and raw_top and raw_top.throughput_rps:
            ratio = grpc_top.throughput_rps / raw_top.throughput_rps
            figures.append(
                _figure(model, "grpc_vs_in_process", f"gRPC req/s at c{top} >= "
                        f"{COMPUTE_VS_IN_PROCESS:g} x in-process {raw_top.runtime}", ratio,
                        COMPUTE_VS_IN_PROCESS, ratio >= COMPUTE_VS_IN_PROCESS,
                        modelplane_rps=grpc_top.throughput_rps,
                        in_process_rps=raw_top.throughput_rps, **common)
            )  # fmt: skip
        if grpc1 and raw1 and grpc1.requests:
            if compute:
                limit = LATENCY_FACTOR * (raw1.p50_ms + LATENCY_SLACK_MS)
                rule = f"gRPC p50 at c1 <= {LATENCY_FACTOR:g} x (in-process p50 + 1 ms)"
            else:
                limit = raw1.p50_ms + OVERHEAD_P50_MS
                rule = f"gRPC p50 at c1 <= in-process p50 + {OVERHEAD_P50_MS:g} ms"
            figures.append(
                _figure(model, "grpc_p50_c1", rule, grpc1.p50_ms, limit, grpc1.p50_ms <= limit,
                        in_process_p50_ms=raw1.p50_ms, batching=mode,
                        batching_decided_by=decided_by, concurrency=1)
            )  # fmt: skip
    for entry in startup:
        figures.append(
            _figure(entry["model"], "idle_rss", f"idle RSS of its own server <= "
                    f"{IDLE_RSS_MIB:g} MiB", entry["idle_rss_mib"], IDLE_RSS_MIB,
                    entry["idle_rss_mib"] <= IDLE_RSS_MIB)
        )  # fmt: skip
        figures.append(
            _figure(entry["model"], "ready_s", f"cold start to ready <= {READY_S:g} s",
                    entry["ready_s"], READY_S, entry["ready_s"] <= READY_S)
        )  # fmt: skip
    return figures
