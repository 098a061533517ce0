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
from typing import NoReturn

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from predictors import metrics
from predictors.errors import GRPC_TO_HTTP, describe
from predictors.protocol import grpc_codec
from predictors.protocol.rest import DrainFlag, server_metadata_doc
from predictors.repository import ModelRegistry

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: ModelRegistry, draining: DrainFlag) -> None:
        self.registry = registry
        self.draining = draining

    def _abort(self, context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
        _, code, message = describe(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("gRPC request failed", exc_info=exc)
        context.abort(code, message)
        raise AssertionError("unreachable: context.abort raises")

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(
            ready=self.registry.server_ready() and not self.draining.is_set
        )

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**server_metadata_doc())

    def ModelReady(self, request, context):
        try:
            model = self.registry.resolve(request.name, request.version)
        except Exception as exc:
            self._abort(context, exc)
        return pb.ModelReadyResponse(ready=model.ready)

    def ModelMetadata(self, request, context):
        try:
            model = self.registry.resolve(request.name, request.version)
        except Exception as exc:
            self._abort(context, exc)
        doc = model.metadata(self.registry.version_list(request.name))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[tensor(**t) for t in doc["inputs"]],
            outputs=[tensor(**t) for t in doc["outputs"]],
        )

    def ModelInfer(self, request, context):
        record = metrics.RequestRecord("grpc")
        try:
            model = self.registry.resolve(request.model_name, request.model_version)
            record.served_by(model.name, model.version, model.series)
            return model.handle_in_thread(
                lambda: grpc_codec.decode(request),
                lambda req, outputs: grpc_codec.encode(model.name, model.version, req, outputs),
            )
        except Exception as exc:
            _, code, _ = describe(exc)
            record.status = str(GRPC_TO_HTTP.get(code, 500))
            self._abort(context, exc)
        finally:
            record.finish()


def create_grpc_server(
    registry: ModelRegistry, draining: DrainFlag, address: str, threads: int
) -> grpc.Server:
    """`threads` bounds the gRPC requests handled at once (and so gRPC rows per batch)."""
    server = grpc.server(
        ThreadPoolExecutor(threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(registry, draining), server
    )
    server.add_insecure_port(address)
    return server
