"""V2 gRPC service `inference.GRPCInferenceService` on grpc's threaded server.

Why threads and not grpc.aio (which KServe uses): a handler thread can run
the model in place, so a request needs no hand-off between the event loop
and a worker thread and back, and grpc's threaded server spends about half
the CPU per call that grpc.aio does (README, "How it works"). The event loop
keeps HTTP; neither protocol ever runs a model on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from predictors.admission import Caller
from predictors.protocol import grpc_codec
from predictors.protocol.grpc_messages import pb
from predictors.serving.grpc_health import add_health_and_reflection
from predictors.serving.repository import ModelRepository
from predictors.serving.requests import inference
from predictors.serving.status import client_message, grpc_code, is_server_fault
from predictors.serving.streaming import HandlerSlots
from predictors.serving.triton_grpc import TritonExtensionsServicer

log = logging.getLogger(__name__)

#: a deadline further off than this (a day) is no deadline
NO_DEADLINE_S = 86_400.0


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    if is_server_fault(exc):
        log.exception("gRPC request failed", exc_info=exc)
    context.abort(grpc_code(exc), client_message(exc))
    raise AssertionError("unreachable: context.abort raises")


class InferenceServicer(TritonExtensionsServicer):
    def __init__(
        self,
        repository: ModelRepository,
        log_latency: bool = False,
        slots: HandlerSlots | None = None,
    ) -> None:
        self.repository = repository
        self.log_latency = log_latency
        #: --max_threads slots for inference work (streaming.HandlerSlots)
        self.slots = slots or HandlerSlots(4)

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
        remaining = context.time_remaining()
        # grpc reports "no deadline" as None or as an enormous number of seconds.
        if remaining is not None and remaining > NO_DEADLINE_S:
            remaining = None
        caller = Caller(
            "grpc",
            # The client's own deadline (tritonclient's client_timeout): grpc
            # ends the call then, and the batcher drops it if it has not run.
            deadline=None if remaining is None else time.monotonic() + remaining,
            alive=context.is_active,
            idle=self.slots.idle,
        )
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
                # Admitted first, then a thread's slot: the wait for one is
                # bounded by the model's queue and by the deadline.
                with model.admit(caller), self.slots.slot(caller.remaining()):
                    return model.handle_in_thread(
                        lambda: shm.read_inputs(grpc_codec.decode(request)),
                        lambda req, outputs: grpc_codec.encode(
                            model.name, model.version, req, shm.write_outputs(req, outputs)
                        ),
                        caller,
                    )
        except Exception as exc:
            _abort(context, exc)


class _Corrupt:
    """A request whose bytes are not the message they should be."""

    def __init__(self, type_name: str, error: Exception) -> None:
        self.message = f"request is not a valid {type_name} message: {error}"


def _lenient(message_class: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return _Corrupt(message_class.DESCRIPTOR.full_name, exc)

    return parse


def _unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _Corrupt):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return behavior(request, context)

    return handle


def _streaming(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def handle(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        def checked() -> Iterator[Any]:
            for request in requests:
                if isinstance(request, _Corrupt):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                yield request

        return behavior(checked(), context)

    return handle


def register(server: grpc.Server, servicer: Any) -> None:
    """The service's handlers, with request parsing of our own.

    What the generated `add_GRPCInferenceServiceServicer_to_server` does, but
    grpc answers bytes its deserializer cannot parse with INTERNAL ("Exception
    deserializing request!", grpc/_server.py `_unary_request`): a client's
    malformed message is the client's error, INVALID_ARGUMENT, so parsing
    happens in the handler's terms.
    """
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    handlers = {}
    for method in service.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        behavior = getattr(servicer, method.name)
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _streaming(behavior),
                request_deserializer=_lenient(request_class),
                response_serializer=response_class.SerializeToString,
            )
        elif not method.client_streaming and not method.server_streaming:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(behavior),
                request_deserializer=_lenient(request_class),
                response_serializer=response_class.SerializeToString,
            )
        else:  # no such method in the service today
            raise TypeError(f"{method.name}: half-streaming RPCs are not served")
    # Registered as well as generic, as the generated code does: grpc's core
    # then matches a registered method's path itself, where a generic handler
    # is looked up in Python on every call.
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


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
    #: requests one model may hold (--max_queue_size): that many may wait for a slot
    queue: int = 128


class PortInUse(OSError):
    pass


def create_grpc_server(repository: ModelRepository, options: GrpcOptions) -> grpc.Server:
    """The gRPC server, bound (not yet started); PortInUse if the address is taken."""
    slots = HandlerSlots(options.threads, options.queue)  # open streams hold threads, not slots
    server = grpc.server(
        ThreadPoolExecutor(slots.pool_size, thread_name_prefix="grpc"),
        interceptors=[slots],
        # Beyond this grpc refuses at once (RESOURCE_EXHAUSTED): nothing waits
        # unseen for a thread.
        maximum_concurrent_rpcs=slots.pool_size,
        options=[
            ("grpc.max_send_message_length", options.max_send_message_length),
            ("grpc.max_receive_message_length", options.max_receive_message_length),
            # gRPC sets SO_REUSEPORT by default: a second server on the same
            # port would then start silently and take half the connections.
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server, InferenceServicer(repository, options.log_latency, slots))
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
