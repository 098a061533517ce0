"""Package the store's TorchScript models for TorchServe, in KServe's layout.

KServe's `kserve-torchserve` runtime mounts the storageUri at /mnt/models and
starts `torchserve --model-store=/mnt/models/model-store
--ts-config=/mnt/models/config/config.properties`; its KServe wrapper reads the
model names from `model_snapshot` in that file. So the folder written here is:

    <out>/config/config.properties
    <out>/model-store/<served-name>.mar    (model.pt + metadata.json + handler.py)

Everything is written beside <out> and renamed into place (predictors.atomic),
so a failure leaves <out> as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from predictors.atomic import atomic_folder
from predictors.errors import Refused
from predictors.formats import FORMATS, get_format
from predictors.metadata import ModelMetadata
from predictors.model_store import NAME_RE, StoreError, discover, verify, version_key

HANDLER = Path(__file__).with_name("handler.py")
KSERVE_MODEL_STORE = "/mnt/models/model-store"


class PackageError(Refused):
    """Packaging was refused or failed; the message says why."""


@dataclass(frozen=True)
class Packaged:
    served_name: str  # the TorchServe model name (MAR name, V2 model name)
    store_name: str
    version: str
    mar: Path


@dataclass(frozen=True)
class Ports:
    """TorchServe's listeners. The defaults are those KServe's runtime expects."""

    host: str = "0.0.0.0"
    inference: int = 8085
    management: int = 8085
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071


def served_name_for(store_name: str) -> str:
    # `digits-torch` is served as `digits`: the format suffix only tells store
    # entries apart, and TorchServe serves one format anyway.
    return store_name.removesuffix("-torch") or store_name


def config_properties(
    models: list[Packaged] | list[tuple[str, str]],
    *,
    model_store: str = KSERVE_MODEL_STORE,
    ports: Ports | None = None,
    workers: int = 1,
) -> str:
    """config.properties for TorchServe serving `models` at startup.

    models: Packaged entries or (served name, version) pairs; the MAR of each
    is `<served name>.mar` in model_store.
    """
    ports = ports or Ports()
    pairs = [(m.served_name, m.version) if isinstance(m, Packaged) else m for m in models]
    snapshot = {
        "name": "startup.cfg",
        "modelCount": len(pairs),
        "models": {
            name: {
                version: {
                    "defaultVersion": True,
                    "marName": f"{name}.mar",
                    "minWorkers": workers,
                    "maxWorkers": workers,
                    # The kservev2 envelope answers only the first request of a
                    # batch, so TorchServe must not batch requests together.
                    "batchSize": 1,
                    "maxBatchDelay": 0,
                    "responseTimeout": 60,
                }
            }
            for name, version in pairs
        },
    }
    lines = [
        f"inference_address=http://{ports.host}:{ports.inference}",
        f"management_address=http://{ports.host}:{ports.management}",
        f"metrics_address=http://{ports.host}:{ports.metrics}",
        f"grpc_inference_address={ports.host}",
        f"grpc_management_address={ports.host}",
        f"grpc_inference_port={ports.grpc_inference}",
        f"grpc_management_port={ports.grpc_management}",
        "enable_metrics_api=true",
        "metrics_mode=prometheus",
        "metrics_format=prometheus",
        # KServe sets TS_SERVICE_ENVELOPE (kservev2 for protocol v2) in the
        # environment; this lets TorchServe read it.
        "enable_envvars_config=true",
        # KServe fronts TorchServe with its own wrapper; TorchServe's token
        # files would only lock that wrapper out.
        "disable_token_authorization=true",
        "install_py_dep_per_model=false",
        "number_of_netty_threads=4",
        "job_queue_size=100",
        f"model_store={model_store}",
        "model_snapshot=" + json.dumps(snapshot, separators=(",", ":")),
    ]
    return "\n".join(lines) + "\n"


def _select(store: Path, models: list[str] | None) -> list[tuple[ModelMetadata, Path]]:
    """The TorchScript entries to package: `name` (its newest version) or `name:version`."""
    try:
        found = discover(store)
    except StoreError as exc:
        raise PackageError(str(exc)) from exc
    wanted: list[tuple[str, str | None]] = []
    for item in models or []:
        name, _, version = item.partition(":")
        wanted.append((name, version or None))
    chosen: dict[str, tuple[ModelMetadata, Path]] = {}
    for stored in sorted(found, key=lambda s: (s.name, version_key(s.version))):
        if wanted and not any(n == stored.name and v in (None, stored.version) for n, v in wanted):
            continue
        meta = stored.read_metadata()
        if not get_format(meta.format).torchserve:
            if wanted:
                raise PackageError(
                    f"{stored.name}:{stored.version} is {meta.format}; TorchServe packaging "
                    f"takes {', '.join(f.name for f in FORMATS.values() if f.torchserve)} models"
                )
            continue
        chosen[stored.name] = (meta, stored.path)  # sorted: the newest version wins
    missing = [f"{n}{':' + v if v else ''}" for n, v in wanted if n not in chosen]
    if missing:
        raise PackageError(f"not in {store}: {', '.join(missing)}")
    if not chosen:
        raise PackageError(f"{store} holds no TorchScript models")
    return list(chosen.values())


def _archive(meta: ModelMetadata, path: Path, served: str, export: Path) -> Path:
    problems = verify(path, meta)
    if problems:
        raise PackageError(f"{meta.name}:{meta.version}: " + "; ".join(problems))
    cmd = [
        sys.executable,
        "-m",
        "model_archiver.model_packaging",
        "--model-name",
        served,
        "--version",
        meta.version,
        "--serialized-file",
        str(path / meta.model_file),
        "--handler",
        str(HANDLER),
        "--extra-files",
        str(path / "metadata.json"),
        "--export-path",
        str(export),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise PackageError(
            f"torch-model-archiver failed for {meta.name}:{meta.version} "
            f"(is the `torchserve` extra installed?):\n{result.stderr or result.stdout}"
        )
    return export / f"{served}.mar"


def package(
    store: Path,
    out: Path,
    models: list[str] | None = None,
    served_name: str | None = None,
    model_store_path: str = KSERVE_MODEL_STORE,
    force: bool = False,
) -> list[Packaged]:
    """Write `<out>/config/config.properties` and `<out>/model-store/*.mar`."""
    selected = _select(store, models)
    if served_name is not None and len(selected) != 1:
        raise PackageError("--served-name needs exactly one model (give --models NAME)")
    names = [served_name or served_name_for(meta.name) for meta, _ in selected]
    for name in names:
        if not NAME_RE.match(name):
            raise PackageError(f"served name {name!r} must be a Kubernetes name")
    if len(set(names)) != len(names):
        raise PackageError(f"two models would be served under one name: {names}")
    if out.exists() and any(out.iterdir()) and not force:
        raise PackageError(f"{out} is not empty; give --force to replace it")

    packaged: list[Packaged] = []
    with atomic_folder(out, replace=True) as staging:
        (staging / "config").mkdir()
        (staging / "model-store").mkdir()
        for (meta, path), name in zip(selected, names, strict=True):
            mar = _archive(meta, path, name, staging / "model-store")
            packaged.append(Packaged(name, meta.name, meta.version, out / "model-store" / mar.name))
        (staging / "config" / "config.properties").write_text(
            config_properties(packaged, model_store=model_store_path)
        )
        # KServe runs TorchServe as user 1000 and reads, never writes, here.
        for root, dirs, files in os.walk(staging):
            for d in dirs:
                os.chmod(Path(root) / d, 0o755)
            for f in files:
                os.chmod(Path(root) / f, 0o644)
        os.chmod(staging, 0o755)
    return packaged
