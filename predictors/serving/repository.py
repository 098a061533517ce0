"""The models a server holds, by name and version, and the server's own state.

For a model's name the newest version that is ready answers (the newest of
all while none is: its readiness then says why), as KServe and Triton
expect; `/versions/{v}` requests reach any version. The repository also owns
what both transports report about the server as a whole: readiness (loading
done, at least one model serving, not draining) and server metadata.

Triton's model repository extension (predictors.serving.repository_extension)
changes the set while the server runs: `load` brings in the versions of a
model that appeared in the store or are not ready, and `unload` stops one
model. Either builds the new version table beside the one requests read and
swaps it in whole, so a request never sees half a change and the other
models keep serving throughout; a new version answers for the name only once
it is loaded and warmed up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import predictors
from predictors.admission import AdmissionConfig
from predictors.errors import InvalidInput, ModelNotFound, VersionNotFound
from predictors.metadata import BatchingConfig
from predictors.model import ModelState, ServedModel
from predictors.model_store import StoredModel, StoreError, check_model_name, discover, version_key
from predictors.runtimes import RuntimeOptions
from predictors.serving.shared_memory import SharedMemoryRegistry

log = logging.getLogger(__name__)

#: Triton's names for the protocol extensions this server implements (server metadata)
EXTENSIONS = [
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "statistics",
    "system_shared_memory",
]


@dataclass(frozen=True)
class ModelSource:
    """Where `load` finds models, and how it serves them: as the server started.

    `model_dirs` maps a served name to the folder holding its versions;
    `roots` are stores (`<name>/<version>/`) in which new names are looked up.
    """

    roots: tuple[Path, ...] = ()
    model_dirs: dict[str, Path] = field(default_factory=dict)
    #: served name -> the name in the store, where they differ (--model_name)
    stored_names: dict[str, str] = field(default_factory=dict)
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    batching: BatchingConfig | None = None
    #: --model_name: the single model is served under this name
    rename: str | None = None
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)

    @classmethod
    def around(cls, models: list[ServedModel]) -> ModelSource:
        """The source the served models came from, read off the models themselves."""
        roots, model_dirs, stored_names = [], {}, {}
        for model in models:
            folder = model.stored.path.parent
            model_dirs[model.name] = folder
            if model.name != model.stored.name:
                stored_names[model.name] = model.stored.name
            if folder.name == model.stored.name and folder.parent not in roots:
                roots.append(folder.parent)
        first = models[0] if models else None
        return cls(
            roots=tuple(roots),
            model_dirs=model_dirs,
            stored_names=stored_names,
            options=first.options if first else RuntimeOptions(),
            # The serve flags' batching override, which every model shares.
            batching=first._batching_override if first else None,
            rename=first.name if first and first.name != first.stored.name else None,
            admission=first.admission.config if first else AdmissionConfig(),
        )

    def find(self, name: str) -> list[StoredModel]:
        """Every version of `name` in the store now (empty if there is none)."""
        folder = self.model_dirs.get(name)
        if folder is None:
            folder = next((r / name for r in self.roots if (r / name).is_dir()), None)
        if folder is None or not folder.is_dir():
            return []
        try:
            found = discover(folder)
        except StoreError:
            return []
        stored_name = self.stored_names.get(name, name)
        return [s for s in found if s.name == stored_name]

    def serve(self, stored: StoredModel) -> ServedModel:
        return ServedModel(stored, self.options, self.rename, self.batching, self.admission)

    def everything(self) -> list[StoredModel]:
        """What the index lists: every model version in the stores and model folders."""
        seen: dict[tuple[str, str], StoredModel] = {}
        folders = [*self.roots, *self.model_dirs.values()]
        for folder in folders:
            try:
                for stored in discover(folder):
                    seen.setdefault((stored.name, stored.version), stored)
            except (StoreError, OSError):
                continue
        return list(seen.values())


class ModelRepository:
    def __init__(self, models: list[ServedModel], source: ModelSource | None = None) -> None:
        self.versions: dict[str, dict[str, ServedModel]] = {}
        for model in models:
            self.versions.setdefault(model.name, {})[model.version] = model
        self.source = source or ModelSource.around(models)
        self._newest: dict[str, ServedModel] = {}
        self._refresh_newest()
        self.loading_done = False
        # Set on SIGTERM: readiness turns false so Kubernetes stops sending traffic.
        self.draining = False
        # One load or unload at a time; requests never wait for it.
        self._changing = threading.Lock()
        #: Triton's system shared-memory regions, shared by HTTP and gRPC
        self.shared_memory = SharedMemoryRegistry()

    def version_list(self, name: str) -> list[str]:
        return sorted(self.versions.get(name, {}), key=version_key)

    def resolve(self, name: str, version: str | None = None) -> ServedModel:
        by_version = self.versions.get(name)
        if by_version is None:
            raise ModelNotFound(name)
        if not version:
            return self._newest[name]
        if version not in by_version:
            raise VersionNotFound(name, version, self.version_list(name))
        return by_version[version]

    def all_models(self) -> list[ServedModel]:
        return [m for by_version in self.versions.values() for m in by_version.values()]

    def _refresh_newest(self) -> None:
        newest = {}
        for name, by_version in self.versions.items():
            ordered = sorted(by_version, key=version_key)
            ready = [v for v in ordered if by_version[v].ready]
            newest[name] = by_version[(ready or ordered)[-1]]
        self._newest = newest

    async def load_all(self, parallel: int = 2) -> None:
        """Load every model in threads, so the server answers liveness meanwhile."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(parallel, thread_name_prefix="load") as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, m.load) for m in self.all_models()))
        self._refresh_newest()
        self.loading_done = True
        failed = [f"{m.name}:{m.version}" for m in self.all_models() if not m.ready]
        if failed:
            log.error("models that failed to load (see errors above): %s", ", ".join(failed))

    # -- Triton's model repository extension ---------------------------------

    def load(self, name: str) -> list[str]:
        """Load the versions of `name` that are new in the store or not ready; blocking.

        Ready versions keep serving untouched (a store version never changes:
        its files are checksummed), and versions whose folder is gone are
        unloaded. Returns the versions loaded; raises if one failed, which
        then stays listed, not ready, with its error.
        """
        try:
            check_model_name(name)
        except StoreError as exc:
            raise InvalidInput(str(exc)) from exc
        with self._changing:
            found = {s.version: s for s in self.source.find(name)}
            if not found:
                raise ModelNotFound(name, f"model {name} is not in the model store")
            current = dict(self.versions.get(name, {}))
            fresh = []
            for version, stored in sorted(found.items(), key=lambda kv: version_key(kv[0])):
                old = current.get(version)
                if old is not None and old.ready:
                    continue
                if old is not None:
                    old.stop()  # not serving anyway; its series are reused
                model = self.source.serve(stored)
                model.load()
                current[version] = model
                fresh.append(model)
            for version in [v for v in current if v not in found]:
                log.info("model %s version %s left the store: unloading", name, version)
                current.pop(version).stop()
            self._publish(name, current)
        failed = [m for m in fresh if not m.ready]
        if failed:
            raise InvalidInput(
                "; ".join(f"failed to load {m.name} version {m.version}: {m.error}" for m in failed)
            )
        loaded = ", ".join(m.version for m in fresh) or "none (all ready)"
        log.info("model %s: loaded versions %s", name, loaded)
        return [m.version for m in fresh]

    def unload(self, name: str) -> None:
        """Stop every version of `name`: not ready, memory freed; `load` brings it back."""
        with self._changing:
            by_version = self.versions.get(name)
            if by_version is None:
                raise ModelNotFound(name)
            current = {}
            for version, model in by_version.items():
                # A fresh, never-loaded stand-in keeps the name routable (requests
                # get 503 with the state) without holding the runtime's memory.
                stand_in = self.source.serve(model.stored)
                stand_in.state = ModelState.UNLOADED
                model.stop()
                current[version] = stand_in
            self._publish(name, current)
        log.info("model %s unloaded", name)

    def _publish(self, name: str, by_version: dict[str, ServedModel]) -> None:
        versions = dict(self.versions)
        if by_version:
            versions[name] = by_version
        else:
            versions.pop(name, None)
        self.versions = versions
        self._refresh_newest()

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Triton's repository index: every version in the store, and its state."""
        entries: dict[tuple[str, str], dict[str, str]] = {}
        served_as = {stored: served for served, stored in self.source.stored_names.items()}
        for stored in self.source.everything():
            name = served_as.get(stored.name, stored.name)
            entries[(name, stored.version)] = {
                "name": name,
                "version": stored.version,
                "state": "UNAVAILABLE",
                "reason": "not loaded",
            }
        for model in self.all_models():
            if model.ready:
                state, reason = "READY", ""
            elif model.state == ModelState.LOADING:
                state, reason = "LOADING", ""
            else:
                state, reason = "UNAVAILABLE", model.error or model.state.lower()
            entries[(model.name, model.version)] = {
                "name": model.name,
                "version": model.version,
                "state": state,
                "reason": reason,
            }
        listed = sorted(entries.values(), key=lambda e: (e["name"], version_key(e["version"])))
        return [e for e in listed if e["state"] == "READY"] if ready_only else listed

    # -- the server as a whole -----------------------------------------------

    def server_ready(self) -> bool:
        """Ready once loading has finished, at least one model serves, and not draining."""
        return self.loading_done and not self.draining and any(m.ready for m in self.all_models())

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelplane", "version": predictors.__version__, "extensions": EXTENSIONS}

    def close(self) -> None:
        for model in self.all_models():
            model.stop()
        self.shared_memory.close()
