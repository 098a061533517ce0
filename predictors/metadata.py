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

METADATA_FILE = "metadata.json"

# V2 datatype -> numpy dtype. BYTES and BF16 are left out on purpose: none of
# the runtimes here takes them, and refusing them early gives a clear error.
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_V2: dict[np.dtype, str] = {v: k for k, v in V2_TO_NUMPY.items()}

# Store format -> (file name, KServe model format, V2 platform string).
FORMATS: dict[str, tuple[str, str, str]] = {
    "onnx": ("model.onnx", "onnx", "onnxruntime_onnx"),
    "torchscript": ("model.pt", "pytorch", "pytorch_torchscript"),
    "torch_export": ("model.pt2", "pytorch", "pytorch_torch_export"),
}


class MetadataError(ValueError):
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
    max_batch_size: int = 32
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
    max_batch_size: int = 256
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    metrics: dict[str, float] = field(default_factory=dict)
    framework_versions: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def model_file(self) -> str:
        return FORMATS[self.format][0]

    @property
    def platform(self) -> str:
        return FORMATS[self.format][2]

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
            if fmt not in FORMATS:
                raise MetadataError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
            batching = BatchingConfig(**raw.get("batching", {}))
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
