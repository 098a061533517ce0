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
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from predictors.protocol import grpc_codec
from predictors.protocol.grpc_messages import pb, pb_grpc
from predictors.serving.grpc_health import add_health_and_reflection
from predictors.serving.repository import ModelRepository
from predictors.serving.requests import inference
from predictors.serving.status import client_message, grpc_code, is_server_fault
from predictors.serving.triton_grpc import TritonExtensionsServicer

log = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    if is_server_fault(exc):
        log.exception("gRPC request failed", exc_info=exc)
    context.abort(grpc_code(exc), client_message(exc))
    raise AssertionError("unreachable: context.abort raises")


class InferenceServicer(TritonExtensionsServicer):
    def __init__(self, repository: ModelRepository, log_latency: bool = False) -> None:
        self.repository = repository
        self.log_latency = log_latency

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
                self.repository,
                "grpc",
                request.model_name,
                request.model_version,
                request.id,
                self.log_latency,
            ) as model:
                shm = self.repository.shared_memory
                return model.handle_in_thread(
                    lambda: shm.read_inputs(grpc_codec.decode(request)),
                    lambda req, outputs: grpc_codec.encode(
                        model.name, model.version, req, shm.write_outputs(req, outputs)
                    ),
                )
        except Exception as exc:
            _abort(context, exc)


@dataclass(frozen=True)
class GrpcOptions:
    """How the gRPC server listens (KServe's flags, predictors.settings)."""

    address: str
    #: handler threads: the gRPC requests handled at once (and so gRPC rows per batch)
    threads: int = 4
    max_send_message_length: int = 8 * 1024 * 1024
    max_receive_message_length: int = 8 * 1024 * 1024
    #: (certificate chain, private key) PEM bytes: TLS instead of plaintext
    tls: tuple[bytes, bytes] | None = None
    log_latency: bool = False


class PortInUse(OSError):
    pass


def create_grpc_server(repository: ModelRepository, options: GrpcOptions) -> grpc.Server:
    """The gRPC server, bound (not yet started); PortInUse if the address is taken."""
    server = grpc.server(
        ThreadPoolExecutor(options.threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_send_message_length", options.max_send_message_length),
            ("grpc.max_receive_message_length", options.max_receive_message_length),
            # gRPC sets SO_REUSEPORT by default: a second server on the same
            # port would then start silently and take half the connections.
            ("grpc.so_reuseport", 0),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(repository, options.log_latency), server
    )
    add_health_and_reflection(server, repository)
    try:
        if options.tls is None:
            port = server.add_insecure_port(options.address)
        else:
            credentials = grpc.ssl_server_credentials([(options.tls[1], options.tls[0])])
            port = server.add_secure_port(options.address, credentials)
    except RuntimeError as exc:  # grpc >= 1.50 raises where older ones returned 0
        raise PortInUse(f"gRPC cannot listen on {options.address}: {exc}") from exc
    if port == 0:
        raise PortInUse(f"gRPC cannot listen on {options.address} (address in use?)")
    return server
