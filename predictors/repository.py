"""The models a server holds, by name and version.

A KServe ModelRepository keyed by name (the newest version answers for the
name, as KServe expects), which also resolves `/versions/{v}` requests.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from kserve import ModelRepository

from predictors.errors import ModelNotFound, VersionNotFound
from predictors.model import ModelplaneModel
from predictors.model_store import version_key

log = logging.getLogger(__name__)


class ModelRegistry(ModelRepository):
    def __init__(self, models: list[ModelplaneModel]) -> None:
        super().__init__(models_dir="")
        self.versions: dict[str, dict[str, ModelplaneModel]] = {}
        for model in models:
            self.versions.setdefault(model.name, {})[model.version] = model
        for name, by_version in self.versions.items():
            self.update(by_version[self.version_list(name)[-1]], name)
        self.loading_done = False

    def version_list(self, name: str) -> list[str]:
        return sorted(self.versions.get(name, {}), key=version_key)

    def resolve(self, name: str, version: str | None = None) -> ModelplaneModel:
        by_version = self.versions.get(name)
        if by_version is None:
            raise ModelNotFound(name)
        if not version:
            return self.models[name]  # the newest, as __init__ registered it
        if version not in by_version:
            raise VersionNotFound(name, version, self.version_list(name))
        return by_version[version]

    def all_models(self) -> list[ModelplaneModel]:
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
        """Ready once loading has finished and at least one model serves."""
        return self.loading_done and any(m.ready for m in self.all_models())

    async def close(self) -> None:
        for model in self.all_models():
            await model.close()
