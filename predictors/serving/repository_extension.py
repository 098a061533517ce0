"""Triton's model repository extension: index, load and unload while the server runs.

`POST /v2/repository/index`, `/v2/repository/models/{m}/load` and `/unload`,
and gRPC `RepositoryIndex`, `RepositoryModelLoad`, `RepositoryModelUnload`.
The work is ModelRepository's (load, unload, index): this module only reads
requests and runs a load off the event loop. A load takes the model from the
store (`modelplane store add` puts new versions there); a load request that
carries its own configuration or files (Triton's `config` and `file:`
parameters) is refused: the store, with its checksums, is the only source.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request, Response

from predictors.errors import InvalidInput
from predictors.protocol.grpc_codec import parameter_values
from predictors.protocol.grpc_messages import pb
from predictors.protocol.rest_codec import decode_object
from predictors.serving.repository import ModelRepository
from predictors.serving.responses import json_response


def _refuse_overrides(name: str, parameters: object) -> None:
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    overrides = sorted(k for k in parameters if k == "config" or k.startswith("file:"))
    if overrides:
        raise InvalidInput(
            f"load of {name}: {', '.join(overrides)} cannot be given here; models load from "
            "the model store (add a version with `modelplane store add`)"
        )


def add_routes(app: FastAPI, repository: ModelRepository) -> None:
    @app.post("/v2/repository/index")
    async def index(request: Request) -> Response:
        ready = decode_object(await request.body()).get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidInput("'ready' must be true or false")
        return json_response(repository.index(ready_only=ready))

    @app.post("/v2/repository/models/{name}/load")
    async def load(name: str, request: Request) -> Response:
        _refuse_overrides(name, decode_object(await request.body()).get("parameters", {}))
        await asyncio.to_thread(repository.load, name)
        return json_response({"name": name, "load": True})

    @app.post("/v2/repository/models/{name}/unload")
    async def unload(name: str, request: Request) -> Response:
        decode_object(await request.body())
        await asyncio.to_thread(repository.unload, name)
        return json_response({"name": name, "unload": True})


def grpc_index(repository: ModelRepository, request: Any) -> Any:
    response = pb.RepositoryIndexResponse()
    for entry in repository.index(ready_only=request.ready):
        response.models.add(**entry)
    return response


def grpc_load(repository: ModelRepository, request: Any) -> Any:
    _refuse_overrides(request.model_name, parameter_values(request.parameters))
    repository.load(request.model_name)
    return pb.RepositoryModelLoadResponse()


def grpc_unload(repository: ModelRepository, request: Any) -> Any:
    repository.unload(request.model_name)
    return pb.RepositoryModelUnloadResponse()
