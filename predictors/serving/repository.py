"""The models a server holds, by name and version, and the server's own state.

The newest version (model_store.version_key) answers for a model's name, as
KServe and Triton expect; `/versions/{v}` requests reach any version. The
repository also owns what both transports report about the server as a
whole: readiness (loading done, at least one model serving, not draining)
and server metadata.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import predictors
from predictors.errors import ModelNotFound, VersionNotFound
from predictors.model import ServedModel
from predictors.model_store import version_key

log = logging.getLogger(__name__)

#: V2 protocol extensions this server implements (reported in server metadata)
EXTENSIONS = ["binary_tensor_data"]


class ModelRepository:
    def __init__(self, models: list[ServedModel]) -> None:
        self.versions: dict[str, dict[str, ServedModel]] = {}
        for model in models:
            self.versions.setdefault(model.name, {})[model.version] = model
        self._newest = {
            name: by_version[self.version_list(name)[-1]]
            for name, by_version in self.versions.items()
        }
        self.loading_done = False
        # Set on SIGTERM: readiness turns false so Kubernetes stops sending traffic.
        self.draining = False

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

    async def load_all(self, parallel: int = 2) -> None:
        """Load every model in threads, so the server answers liveness meanwhile."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(parallel, thread_name_prefix="load") as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, m.load) for m in self.all_models()))
        self.loading_done = True
        failed = [f"{m.name}:{m.version}" for m in self.all_models() if not m.ready]
        if failed:
            log.error("models that failed to load (see errors above): %s", ", ".join(failed))

    def server_ready(self) -> bool:
        """Ready once loading has finished, at least one model serves, and not draining."""
        return self.loading_done and not self.draining and any(m.ready for m in self.all_models())

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelplane", "version": predictors.__version__, "extensions": EXTENSIONS}

    def close(self) -> None:
        for model in self.all_models():
            model.stop()
