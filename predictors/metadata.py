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

from predictors.errors import Refused
from predictors.formats import UnknownFormat, get_format
from predictors.protocol.datatypes import V2_TO_NUMPY

METADATA_FILE = "metadata.json"


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
class BatchingConfig:
    """Dynamic batching of concurrent requests (see batching.py)."""

    enabled: bool = True
    #: rows one dynamic batch may hold (a single larger request still runs alone)
    max_rows: int = 32
    # 0 means: never wait for more requests, batch whatever queued up while
    # the previous batch ran. That keeps latency at low load equal to the
    # unbatched path and still batches under concurrency.
    max_queue_delay_ms: float = 0.0


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
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelMetadata:
        try:
            fmt = str(raw["format"])
            get_format(fmt)
            batching = _batching(raw.get("batching", {}))
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                format=fmt,
                inputs=[TensorSpec.from_dict(t) for t in raw["inputs"]],
                outputs=[TensorSpec.from_dict(t) for t in raw["outputs"]],
                files={str(k): str(v) for k, v in raw["files"].items()},
                labels=[str(x) for x in raw.get("labels", [])],
                max_batch_size=int(raw.get("max_batch_size", 256)),
                batching=batching,
                metrics={str(k): float(v) for k, v in raw.get("metrics", {}).items()},
                framework_versions=dict(raw.get("framework_versions", {})),
                seed=raw.get("seed"),
                provenance=dict(raw.get("provenance", {})),
            )
        except MetadataError:
            raise
        except UnknownFormat as exc:
            raise MetadataError(str(exc)) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise MetadataError(f"metadata.json is incomplete or malformed: {exc!r}") from exc

    @classmethod
    def read(cls, version_dir: Path) -> ModelMetadata:
        path = version_dir / METADATA_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise MetadataError(f"{path} does not exist") from exc
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(raw)

    def write(self, version_dir: Path) -> None:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        (version_dir / METADATA_FILE).write_text(text)


def _batching(raw: dict[str, Any]) -> BatchingConfig:
    raw = dict(raw)
    # Stores written before the field was renamed call it max_batch_size.
    if "max_batch_size" in raw:
        raw.setdefault("max_rows", raw.pop("max_batch_size"))
    return BatchingConfig(**raw)
