"""What a model in the store declares about itself: metadata.json, typed.

The V2 protocol describes tensors by name, datatype and shape; the store keeps
exactly that (with -1 for the batch axis) so that requests can be checked
before they reach a runtime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from predictors.drift import DriftProfile, ProfileError
from predictors.errors import Refused
from predictors.formats import UnknownFormat, get_format
from predictors.protocol.datatypes import V2_TO_NUMPY

METADATA_FILE = "metadata.json"


def check_relative_file(name: str) -> str:
    """A file of a version folder: a relative path inside it, never a host path."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise MetadataError(
            f"files entry {name!r} is not a file inside the version folder "
            "(a relative path without '..')"
        )
    return name


class MetadataError(Refused):
    """metadata.json is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return V2_TO_NUMPY[self.datatype]

    @property
    def batched(self) -> bool:
        return len(self.shape) > 0 and self.shape[0] == -1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorSpec:
        try:
            spec = cls(
                str(raw["name"]), str(raw["datatype"]).upper(), tuple(int(d) for d in raw["shape"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MetadataError(f"bad tensor description {raw!r}: {exc}") from exc
        if spec.datatype not in V2_TO_NUMPY:
            raise MetadataError(f"tensor {spec.name!r}: unsupported datatype {spec.datatype}")
        return spec


@dataclass(frozen=True)
class BatchingMeasurement:
    """What `modelplane bench --record-batching` measured, and so why `enabled` is what it is."""

    #: served throughput with batching over without (geometric mean over `protocols`)
    speedup: float
    #: closed-loop callers, batch 1 per request
    concurrency: int
    #: CPUs of the machine it was measured on (predictors.runtimes.available_cpus)
    cpus: int
    protocols: tuple[str, ...] = ("grpc", "http")
    measured_by: str = "modelplane bench"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BatchingMeasurement:
        raw = dict(raw)
        raw["protocols"] = tuple(raw.get("protocols", cls.protocols))
        return cls(**raw)


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching of concurrent requests (see batching.py).

    `enabled` is what `--batching model` (the default) follows. A model whose
    metadata carries `measured` had it decided by `modelplane bench
    --record-batching`: on if batching served at least as many requests per
    second as no batching, at the bench's highest concurrency, on that machine.
    """

    enabled: bool = True
    #: rows one dynamic batch may hold (a single larger request still runs alone)
    max_rows: int = 32
    # 0 means: never wait for more requests, batch whatever queued up while
    # the previous batch ran. That keeps latency at low load equal to the
    # unbatched path and still batches under concurrency.
    max_queue_delay_ms: float = 0.0
    #: the measurement `enabled` was decided from; None when it is a default or a choice
    measured: BatchingMeasurement | None = None


@dataclass
class ModelMetadata:
    name: str
    version: str
    format: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    files: dict[str, str]  # file name -> sha256
    labels: list[str] = field(default_factory=list)
    #: the most rows one request may carry (Triton's `max_batch_size`)
    max_batch_size: int = 256
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    metrics: dict[str, float] = field(default_factory=dict)
    framework_versions: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: the model file when it is not the format's usual name (bare folders: `mnist.onnx`)
    file_name: str | None = None
    #: the training inputs' reference for drift (predictors.drift); None: drift is not measured
    drift_profile: DriftProfile | None = None

    @property
    def model_file(self) -> str:
        return self.file_name or get_format(self.format).file_name

    @property
    def platform(self) -> str:
        return get_format(self.format).platform

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "format": self.format,
            "platform": self.platform,
            "files": dict(self.files),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "labels": list(self.labels),
            "max_batch_size": self.max_batch_size,
            "batching": asdict(self.batching),
            "metrics": dict(self.metrics),
            "framework_versions": dict(self.framework_versions),
            "seed": self.seed,
            "provenance": dict(self.provenance),
            # Absent, not null, without a profile: files written before it existed read the same.
            **({"drift_profile": self.drift_profile.to_dict()} if self.drift_profile else {}),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelMetadata:
        try:
            fmt = str(raw["format"])
            get_format(fmt)
            batching = _batching(raw.get("batching", {}))
            inputs = [TensorSpec.from_dict(t) for t in raw["inputs"]]
            drift_profile = _drift_profile(raw.get("drift_profile"), inputs)
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                format=fmt,
                inputs=inputs,
                outputs=[TensorSpec.from_dict(t) for t in raw["outputs"]],
                files={check_relative_file(str(k)): str(v) for k, v in raw["files"].items()},
                labels=[str(x) for x in raw.get("labels", [])],
                max_batch_size=_positive("max_batch_size", raw.get("max_batch_size", 256)),
                batching=batching,
                metrics={str(k): float(v) for k, v in raw.get("metrics", {}).items()},
                framework_versions=dict(raw.get("framework_versions", {})),
                seed=raw.get("seed"),
                provenance=dict(raw.get("provenance", {})),
                drift_profile=drift_profile,
            )
        except MetadataError:
            raise
        except UnknownFormat as exc:
            raise MetadataError(str(exc)) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise MetadataError(f"metadata.json is incomplete or malformed: {exc!r}") from exc

    @classmethod
    def read(cls, version_dir: Path) -> ModelMetadata:
        # Messages name the file by its place in the store, never by its host
        # path: they reach clients (model metadata, readiness).
        where = f"{version_dir.parent.name}/{version_dir.name}/{METADATA_FILE}"
        try:
            raw = json.loads((version_dir / METADATA_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise MetadataError(f"{where} does not exist") from exc
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{where} is not valid JSON: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise MetadataError(f"{where} is not UTF-8 text: {exc.reason}") from exc
        except OSError as exc:
            raise MetadataError(f"{where} cannot be read: {exc.strerror}") from exc
        if not isinstance(raw, dict):
            raise MetadataError(f"{where} must hold a JSON object")
        return cls.from_dict(raw)

    def write(self, version_dir: Path) -> None:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        (version_dir / METADATA_FILE).write_text(text)


def _drift_profile(raw: Any, inputs: list[TensorSpec]) -> DriftProfile | None:
    if raw is None:
        return None
    try:
        profile = DriftProfile.from_dict(raw)
        profile.check(inputs)
    except ProfileError as exc:
        raise MetadataError(str(exc)) from exc
    return profile


def _batching(raw: dict[str, Any]) -> BatchingConfig:
    raw = dict(raw)
    # Stores written before the field was renamed call it max_batch_size.
    if "max_batch_size" in raw:
        raw.setdefault("max_rows", raw.pop("max_batch_size"))
    # Stores written before batching was measured have no `measured`.
    measured = raw.pop("measured", None)
    config = BatchingConfig(
        **raw, measured=BatchingMeasurement.from_dict(measured) if measured else None
    )
    check_batching(config)
    return config


#: a longer queue delay holds every request that long: nothing sane needs it
MAX_QUEUE_DELAY_MS = 10_000.0


def check_batching(config: BatchingConfig) -> None:
    """Refuse settings under which a model would go ready and then fail every request."""
    if not isinstance(config.enabled, bool):
        raise MetadataError(f"batching.enabled must be true or false, got {config.enabled!r}")
    rows = config.max_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise MetadataError(f"batching.max_rows must be a whole number >= 1, got {rows!r}")
    delay = config.max_queue_delay_ms
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise MetadataError(f"batching.max_queue_delay_ms must be a number, got {delay!r}")
    if not 0 <= delay <= MAX_QUEUE_DELAY_MS:
        raise MetadataError(
            f"batching.max_queue_delay_ms must be between 0 and {MAX_QUEUE_DELAY_MS:g}, "
            f"got {delay!r}"
        )


def _positive(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MetadataError(f"{key} must be a whole number >= 1, got {value!r}")
    return value
