"""The model store on disk: `<store>/<name>/<version>/{metadata.json, model file}`.

Finds models, checks their checksums, and imports a user's own ONNX or
TorchScript file (`modelplane store add`) without ever leaving a half-written
model behind.

A version folder may also be bare: one model file (`model.onnx`, a TorchScript
`*.pt`, a torch.export `*.pt2`) and no metadata.json, as a KServe storageUri
usually holds. Its metadata is then derived from the file when it loads
(predictors.model_inspect), with no checksums to verify.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from predictors.atomic import atomic_folder
from predictors.errors import Refused
from predictors.formats import get_format
from predictors.metadata import METADATA_FILE, MetadataError, ModelMetadata
from predictors.model_inspect import Hints, InspectError, metadata_for

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


# File suffixes of the formats' model files: what makes a folder a bare version.
MODEL_SUFFIXES = frozenset({".onnx", ".pt", ".pt2"})


@dataclass(frozen=True)
class StoredModel:
    """One version of one model found on disk (metadata may still be bad)."""

    name: str
    version: str
    path: Path
    #: a bare version's model file (no metadata.json): metadata is derived from it
    bare_file: Path | None = None
    #: what a bare TorchScript file cannot say about itself
    hints: Hints = field(default_factory=Hints)
    #: why this folder cannot be a model (read_metadata raises it)
    problem: str | None = None

    @property
    def derived(self) -> bool:
        return self.bare_file is not None

    def read_metadata(self) -> ModelMetadata:
        if self.problem:
            raise MetadataError(self.problem)
        if self.bare_file is None:
            return ModelMetadata.read(self.path)
        try:
            meta = metadata_for(self.bare_file, None, self.hints)
        except InspectError as exc:
            raise MetadataError(f"{self.bare_file.name} (no metadata.json): {exc}") from exc
        meta.name, meta.version, meta.file_name = self.name, self.version, self.bare_file.name
        meta.provenance = {"derived_from": self.bare_file.name, "by": "modelplane serve"}
        return meta


def verify(path: Path, metadata: ModelMetadata) -> list[str]:
    """Return the problems with the files of a model version; empty if none."""
    problems = []
    if metadata.model_file not in metadata.files:
        problems.append(f"metadata.json lists no checksum for {metadata.model_file}")
    folder = path.resolve()
    for file_name, expected in metadata.files.items():
        file_path = path / file_name
        # A link to elsewhere would have the server hash (and load) a host file.
        if not file_path.resolve().is_relative_to(folder):
            problems.append(f"{file_name} points outside its version folder")
            continue
        if not file_path.is_file():
            problems.append(f"{file_name} is missing")
            continue
        try:
            actual = sha256_of(file_path)
        except OSError as exc:
            problems.append(f"{file_name} cannot be read: {exc.strerror}")
            continue
        if actual != expected:
            # No digests in the message: it reaches clients, and a digest of
            # a file is a fact about it.
            problems.append(
                f"{file_name} checksum mismatch: it is not the file metadata.json lists"
            )
    return problems


def discover(
    root: Path, names: list[str] | None = None, hints: Hints | None = None
) -> list[StoredModel]:
    """Find model versions under root.

    root may be a store (`<name>/<version>/`), one model (`<version>/`) or one
    version (metadata.json, or a bare model file): KServe mounts whichever
    the storageUri points at as /mnt/models, so `/mnt/models/model.onnx` and
    `/mnt/models/1/model.onnx` both work. `hints` go to bare TorchScript files.
    """
    root = root.resolve()
    if not root.is_dir():
        raise StoreError(f"model store {root} is not a directory")
    hints = hints or Hints()
    if _is_version_dir(root):
        # A lone version: named after its folder, unless the folder is a version number.
        if root.name.isdigit():
            found = [_from_version_dir(root, root.parent.name, root.name, hints)]
        else:
            found = [_from_version_dir(root, root.name, "1", hints)]
    elif any(_is_version_dir(child) for child in _folders(root)):
        found = [_from_version_dir(c, root.name, c.name, hints) for c in _version_dirs(root)]
    else:
        found = []
        for model_dir in sorted(_folders(root)):
            if not _listable(model_dir):
                # Reported as a model that cannot load, so the cause is visible.
                found.append(_unlistable(model_dir, model_dir.name, "1"))
                continue
            for version_dir in _version_dirs(model_dir):
                found.append(
                    _from_version_dir(version_dir, model_dir.name, version_dir.name, hints)
                )
    if names:
        unknown = sorted(set(names) - {m.name for m in found})
        if unknown:
            raise StoreError(f"models not in {root}: {', '.join(unknown)}")
        found = [m for m in found if m.name in names]
    return found


# Every look at the disk below can fail (a folder without read permission, a
# file that vanished): one bad folder must cost its own model, not the store.


def _is(path: Path, kind: str) -> bool:
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except OSError:
        return False


def _listable(path: Path) -> bool:
    try:
        next(path.iterdir(), None)
        return True
    except OSError:
        return False


def _folders(path: Path) -> list[Path]:
    # Dot folders are writes in progress (predictors.atomic) or not ours.
    try:
        children = list(path.iterdir())
    except OSError:
        return []
    return [p for p in children if not p.name.startswith(".") and _is(p, "dir")]


def _model_files(path: Path) -> list[Path]:
    try:
        children = list(path.iterdir())
    except OSError:
        return []
    return sorted(p for p in children if p.suffix in MODEL_SUFFIXES and _is(p, "file"))


def _is_version_dir(path: Path) -> bool:
    return _is(path / METADATA_FILE, "file") or bool(_model_files(path))


def _version_dirs(model_dir: Path) -> list[Path]:
    # A folder of a model that cannot be listed is taken for a broken version.
    dirs = [p for p in _folders(model_dir) if _is_version_dir(p) or not _listable(p)]
    return sorted(dirs, key=lambda p: version_key(p.name))


def _unlistable(path: Path, name: str, version: str) -> StoredModel:
    return StoredModel(
        name, version, path, problem=f"{name} version {version}: its folder cannot be read"
    )


def newest(found: list[StoredModel], name: str) -> StoredModel:
    """The version of `name` that answers for the name: the highest by version_key."""
    versions = [m for m in found if m.name == name]
    if not versions:
        raise StoreError(f"model {name!r} is not in the store")
    return max(versions, key=lambda m: version_key(m.version))


def _from_version_dir(path: Path, name: str, version: str, hints: Hints) -> StoredModel:
    if not _listable(path):
        return _unlistable(path, name, version)
    if not _is(path / METADATA_FILE, "file"):
        files = _model_files(path)
        if len(files) > 1:
            listed = ", ".join(f.name for f in files)
            return StoredModel(
                name,
                version,
                path,
                problem=f"{name} version {version} holds several model files ({listed}) and "
                "no metadata.json: keep one, or add it with `modelplane store add`",
            )
        return StoredModel(name, version, path, bare_file=files[0], hints=hints)
    # Name and version come from metadata when it is readable, so a model
    # mounted on its own at /mnt/models keeps its name; a broken metadata
    # file still yields an entry (named after its folders) that reports why.
    try:
        meta = ModelMetadata.read(path)
        return StoredModel(meta.name, meta.version, path)
    except MetadataError:
        return StoredModel(name, version, path)


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
    # Files the model needs beside it (ONNX external data), as the inspector found them.
    extra = [f for f in metadata.files if f != file_name]
    for relative in extra:
        if not (source.parent / relative).resolve().is_relative_to(source.parent.resolve()):
            raise StoreError(f"{relative} points outside the folder of {source.name}")
        if not (source.parent / relative).is_file():
            raise StoreError(f"{source.name} needs {relative} beside it, and it is missing")
    try:
        with atomic_folder(target) as staging:
            shutil.copyfile(source, staging / file_name)
            files = {file_name: sha256_of(staging / file_name)}
            for relative in extra:
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source.parent / relative, staging / relative)
                files[relative] = sha256_of(staging / relative)
            metadata.name, metadata.version = name, version
            metadata.files = files
            metadata.write(staging)
    except FileExistsError as exc:
        raise StoreError(f"{name} version {version} already exists in {store}") from exc
    return target
