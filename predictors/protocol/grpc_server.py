"""V2 gRPC service `inference.GRPCInferenceService` on grpc.aio."""

from __future__ import annotations

import logging

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

    async def _abort(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        _, code, message = describe(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("gRPC request failed", exc_info=exc)
        await context.abort(code, message)

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(
            ready=self.registry.server_ready() and not self.draining.is_set
        )

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**server_metadata_doc())

    async def ModelReady(self, request, context):
        try:
            model = self.registry.resolve(request.name, request.version)
        except Exception as exc:
            await self._abort(context, exc)
        return pb.ModelReadyResponse(ready=model.ready)

    async def ModelMetadata(self, request, context):
        try:
            model = self.registry.resolve(request.name, request.version)
        except Exception as exc:
            await self._abort(context, exc)
        doc = model.metadata(self.registry.version_list(request.name))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[tensor(**t) for t in doc["inputs"]],
            outputs=[tensor(**t) for t in doc["outputs"]],
        )

    async def ModelInfer(self, request, context):
        record = metrics.RequestRecord("grpc")
        try:
            model = self.registry.resolve(request.model_name, request.model_version)
            record.served_by(model.name, model.version, model.series)
            return await model.handle(
                lambda: grpc_codec.decode(request),
                lambda req, outputs: grpc_codec.encode(model.name, model.version, req, outputs),
            )
        except Exception as exc:
            _, code, _ = describe(exc)
            record.status = str(GRPC_TO_HTTP.get(code, 500))
            await self._abort(context, exc)
        finally:
            record.finish()


def create_grpc_server(
    registry: ModelRegistry, draining: DrainFlag, address: str
) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(registry, draining), server
    )
    server.add_insecure_port(address)
    return server
