"""The model store on disk: `<store>/<name>/<version>/{metadata.json, model file}`.

Finds models, checks their checksums, and imports a user's own ONNX or
TorchScript file (`modelplane store add`) without ever leaving a half-written
model behind.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from predictors.atomic import atomic_folder
from predictors.errors import Refused
from predictors.formats import get_format
from predictors.metadata import METADATA_FILE, MetadataError, ModelMetadata

#: a Kubernetes name (DNS label), for what becomes one: InferenceServices, canaries
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
#: a model name as V2 clients and Triton model repositories use them (`densenet_onnx`,
#: `bert.base`); always one folder of the store: no '/', no '..', no leading '.'
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


def check_model_name(name: str, what: str = "model name") -> None:
    """Refuse a model name (or version) that is not one folder of the store."""
    if not MODEL_NAME_RE.match(name) or ".." in name:
        raise StoreError(
            f"{what} {name!r} must be letters, digits, '_', '-' and '.' (at most 128, not "
            "starting with '.', no '..')"
        )


class StoreError(Refused):
    """A store operation was refused; the message says why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort numerically and after non-numeric ones."""
    return (1, int(version)) if version.isdigit() else (0, version)


@dataclass(frozen=True)
class StoredModel:
    """One version of one model found on disk (metadata may still be bad)."""

    name: str
    version: str
    path: Path

    def read_metadata(self) -> ModelMetadata:
        return ModelMetadata.read(self.path)


def verify(path: Path, metadata: ModelMetadata) -> list[str]:
    """Return the problems with the files of a model version; empty if none."""
    problems = []
    if metadata.model_file not in metadata.files:
        problems.append(f"metadata.json lists no checksum for {metadata.model_file}")
    for file_name, expected in metadata.files.items():
        file_path = path / file_name
        if not file_path.is_file():
            problems.append(f"{file_name} is missing")
            continue
        actual = sha256_of(file_path)
        if actual != expected:
            problems.append(
                f"{file_name} checksum mismatch: metadata says {expected[:12]}..., "
                f"file has {actual[:12]}..."
            )
    return problems


def discover(root: Path, names: list[str] | None = None) -> list[StoredModel]:
    """Find model versions under root.

    root may be a store (`<name>/<version>/`), one model (`<version>/`) or one
    version (holds metadata.json): KServe mounts whichever the storageUri
    points at as /mnt/models.
    """
    root = root.resolve()
    if not root.is_dir():
        raise StoreError(f"model store {root} is not a directory")
    if (root / METADATA_FILE).is_file():
        found = [_from_version_dir(root)]
    elif any((child / METADATA_FILE).is_file() for child in _folders(root)):
        found = [_from_version_dir(child) for child in _version_dirs(root)]
    else:
        found = [
            _from_version_dir(version_dir)
            for model_dir in sorted(_folders(root))
            for version_dir in _version_dirs(model_dir)
        ]
    if names:
        unknown = sorted(set(names) - {m.name for m in found})
        if unknown:
            raise StoreError(f"models not in {root}: {', '.join(unknown)}")
        found = [m for m in found if m.name in names]
    return found


def _folders(path: Path) -> list[Path]:
    # Dot folders are writes in progress (predictors.atomic) or not ours.
    return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _version_dirs(model_dir: Path) -> list[Path]:
    dirs = [p for p in _folders(model_dir) if (p / METADATA_FILE).is_file()]
    return sorted(dirs, key=lambda p: version_key(p.name))


def newest(found: list[StoredModel], name: str) -> StoredModel:
    """The version of `name` that answers for the name: the highest by version_key."""
    versions = [m for m in found if m.name == name]
    if not versions:
        raise StoreError(f"model {name!r} is not in the store")
    return max(versions, key=lambda m: version_key(m.version))


def _from_version_dir(path: Path) -> StoredModel:
    # Name and version come from metadata when it is readable, so a model
    # mounted on its own at /mnt/models keeps its name; a broken metadata
    # file still yields an entry (named after its folders) that reports why.
    try:
        meta = ModelMetadata.read(path)
        return StoredModel(meta.name, meta.version, path)
    except MetadataError:
        return StoredModel(path.parent.name, path.name, path)


def add_model(
    store: Path,
    name: str,
    source: Path,
    version: str | None,
    metadata: ModelMetadata,
) -> Path:
    """Copy a validated model file into the store with its metadata.

    Everything is written to a temporary folder inside the store and moved
    into place in one rename, so a failure leaves the store as it was.
    """
    check_model_name(name)
    if version is not None:
        check_model_name(version, "version")
    model_dir = store / name
    if version is None:
        existing = _version_dirs(model_dir) if model_dir.is_dir() else []
        numeric = [int(p.name) for p in existing if p.name.isdigit()]
        version = str(max(numeric, default=0) + 1)
    target = model_dir / version
    if target.exists():
        raise StoreError(f"{name} version {version} already exists in {store}")
    file_name = get_format(metadata.format).file_name
    try:
        with atomic_folder(target) as staging:
            shutil.copyfile(source, staging / file_name)
            metadata.name, metadata.version = name, version
            metadata.files = {file_name: sha256_of(staging / file_name)}
            metadata.write(staging)
    except FileExistsError as exc:
        raise StoreError(f"{name} version {version} already exists in {store}") from exc
    return target
