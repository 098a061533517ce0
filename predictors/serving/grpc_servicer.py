"""V2 gRPC service `inference.GRPCInferenceService` on grpc's threaded server.

Why threads and not grpc.aio (which KServe uses): a handler thread can run
the model in place, so a request needs no hand-off between the event loop
and a worker thread and back, and grpc's threaded server spends about half
the CPU per call that grpc.aio does (README, "How it works"). The event loop
keeps HTTP; neither protocol ever runs a model on it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc

from predictors.protocol import grpc_codec
from predictors.protocol.grpc_messages import pb, pb_grpc
from predictors.serving.repository import ModelRepository
from predictors.serving.requests import inference
from predictors.serving.status import client_message, grpc_code, is_server_fault

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    if is_server_fault(exc):
        log.exception("gRPC request failed", exc_info=exc)
    context.abort(grpc_code(exc), client_message(exc))
    raise AssertionError("unreachable: context.abort raises")


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self.repository.server_ready())

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(**self.repository.server_metadata())

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            model = self.repository.resolve(request.name, request.version)
        except Exception as exc:
            _abort(context, exc)
        return pb.ModelReadyResponse(ready=model.ready)

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            model = self.repository.resolve(request.name, request.version)
        except Exception as exc:
            _abort(context, exc)
        doc = model.v2_metadata(self.repository.version_list(request.name))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[tensor(**t) for t in doc["inputs"]],
            outputs=[tensor(**t) for t in doc["outputs"]],
        )

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            with inference(
                self.repository, "grpc", request.model_name, request.model_version
            ) as model:
                return model.handle_in_thread(
                    lambda: grpc_codec.decode(request),
                    lambda req, outputs: grpc_codec.encode(model.name, model.version, req, outputs),
                )
        except Exception as exc:
            _abort(context, exc)


def create_grpc_server(repository: ModelRepository, address: str, threads: int) -> grpc.Server:
    """`threads` bounds the gRPC requests handled at once (and so gRPC rows per batch)."""
    server = grpc.server(
        ThreadPoolExecutor(threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(repository), server)
    server.add_insecure_port(address)
    return server
