"""`modelplane bench` arguments and settings (nothing heavy imported: `--help` stays fast)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from predictors.bench.compute_model import COMPUTE_MODEL
from predictors.settings import add_batch_limit_arguments

BUNDLED_MODELS = ("digits-onnx", "digits-torch", "wine-onnx", "wine-torch")
DEFAULT_MODELS = (*BUNDLED_MODELS, COMPUTE_MODEL)
PROTOCOLS = ("grpc", "http")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-store", "--model_store", dest="model_store", default="model-store")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated model names (default: the four bundled models and cnn-onnx; "
        "cnn-onnx and cnn-torch are built at bench time, the others read from --model-store)",
    )
    parser.add_argument(
        "--protocols", default=",".join(PROTOCOLS), help="comma-separated: grpc, http"
    )
    parser.add_argument(
        "--concurrency",
        default="1,8",
        help="comma-separated numbers of closed-loop callers (default 1,8)",
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
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times, in interleaved rounds, and report the "
        "median of each figure (for a shared or noisy machine)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads for the servers and the raw Torch runtime "
        "(0: every CPU, as `modelplane serve` does); raw ONNX keeps onnxruntime's defaults",
    )
    add_batch_limit_arguments(parser)
    parser.add_argument(
        "--no-unbatched",
        dest="unbatched",
        action="store_false",
        help="skip the second server, with --batching off (and the batching decision)",
    )
    parser.add_argument(
        "--no-kserve",
        dest="kserve",
        action="store_false",
        help="skip the naive KServe predictor of each ONNX model (needs the kserve SDK)",
    )
    parser.add_argument(
        "--no-startup",
        dest="startup",
        action="store_false",
        help="skip starting one server per model for cold start and idle memory",
    )
    parser.add_argument(
        "--no-drift",
        dest="drift",
        action="store_false",
        help="skip the drift counting cost: the twins without a drift profile, served beside "
        "each profiled model, and the in-process timing of the counting",
    )
    parser.add_argument(
        "--record-batching",
        dest="record_batching",
        action="store_true",
        help="write the batching decision (on or off, from this run's served figures) into "
        "the metadata.json of each measured model in --model-store",
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


@dataclass(frozen=True)
class BenchSettings:
    model_store: Path
    models: list[str]
    protocols: list[str]
    concurrency: list[int]
    duration: float
    warmup: float
    rounds: int
    threads: int
    max_batch_size: int
    max_queue_delay_ms: float
    unbatched: bool
    kserve: bool
    startup: bool
    drift: bool
    record_batching: bool
    serve_args: list[str]
    csv: Path | None
    json: Path | None
    server_log_dir: Path | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchSettings:
        models = names(args.models)
        protocols = names(args.protocols)
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad or not protocols:
            raise ValueError(f"--protocols: expected some of {', '.join(PROTOCOLS)}, got {bad}")
        try:
            concurrency = sorted({int(c) for c in names(args.concurrency)})
        except ValueError as exc:
            raise ValueError(f"--concurrency: expected numbers like 1,4,16 ({exc})") from exc
        if not concurrency or concurrency[0] < 1 or concurrency[-1] > 1024:
            raise ValueError("--concurrency: each value must be between 1 and 1024")
        if not models:
            raise ValueError("--models: name at least one model")
        if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60:
            raise ValueError("--duration must be in (0, 600] s and --warmup in [0, 60] s")
        if not 1 <= args.rounds <= 100:
            raise ValueError("--rounds must be between 1 and 100")
        if args.threads < 0:
            raise ValueError("--threads must be 0 (all CPUs) or more")
        if args.record_batching and not args.unbatched:
            raise ValueError("--record-batching needs the batching-off server: drop --no-unbatched")
        return cls(
            model_store=Path(args.model_store),
            models=models,
            protocols=protocols,
            concurrency=concurrency,
            duration=args.duration,
            warmup=args.warmup,
            rounds=args.rounds,
            threads=args.threads,
            max_batch_size=args.max_batch_size,
            max_queue_delay_ms=args.max_queue_delay_ms,
            unbatched=args.unbatched,
            kserve=args.kserve,
            startup=args.startup,
            drift=args.drift,
            record_batching=args.record_batching,
            serve_args=list(args.serve_args),
            csv=args.csv,
            json=args.json,
            server_log_dir=args.server_log_dir,
        )


def names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
