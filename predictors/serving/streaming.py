"""gRPC `ModelStreamInfer`: Triton's bidirectional stream of inference requests.

Each request on the stream takes the servicer's own ModelInfer path
(validation, batching, metrics) and gets exactly one response, in order. A
request that fails gets a response whose `error_message` says why (and whose
`infer_response` carries its id, model and version, so a client can tell
which one failed), and the stream goes on: a bad request never ends it.

The requests of one stream run one after another in the handler thread, as
each unary call does; concurrency comes from several streams or calls.
HandlerSlots keeps an open stream from holding one of `--max_threads` while
it waits for its client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NoReturn

import grpc

from predictors.errors import DeadlineExceeded
from predictors.protocol.grpc_messages import pb


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _RequestContext:
    """The stream's context as one unary call sees it: abort ends that request only."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise _Aborted(code, details)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def stream_infer(
    infer: Callable[[Any, Any], Any],
    requests: Iterable[Any],
    context: grpc.ServicerContext,
) -> Iterator[Any]:
    """One ModelStreamInferResponse per request, from the unary handler `infer`."""
    request_context = _RequestContext(context)
    for request in requests:
        try:
            response = infer(request, request_context)
        except _Aborted as failed:
            yield pb.ModelStreamInferResponse(
                error_message=failed.details,
                infer_response=pb.ModelInferResponse(
                    model_name=request.model_name,
                    model_version=request.model_version,
                    id=request.id,
                ),
            )
        else:
            yield pb.ModelStreamInferResponse(infer_response=response)


#: streams open at once, beyond which a new one is refused (RESOURCE_EXHAUSTED)
MAX_STREAMS = 64
#: the RPCs that run models, and so take one of --max_threads slots
INFERENCE_METHODS = ("/ModelInfer", "/ModelStreamInfer")


class HandlerSlots(grpc.ServerInterceptor):
    """`--max_threads` bounds requests being handled, not streams being open.

    grpc's threaded server gives every RPC one pool thread for as long as it
    lasts, and a stream lasts as long as the client keeps it open, mostly
    waiting for its next request. With a pool of --max_threads threads,
    --max_threads open streams would leave none for anything else (and
    perf_analyzer --streaming at a higher concurrency would hang). So the
    pool has MAX_STREAMS threads more, and these slots keep the old bound:
    a unary call holds one while it runs, a stream only while it handles
    one of its requests, never while it waits for the client.

    Only inference takes slots: health checks, metadata and the other cheap
    RPCs never wait behind inference (a Kubernetes gRPC probe stays quick
    under load), and an inference request waiting for its batch gives its
    slot back meanwhile (`idle`): waiting costs no CPU, and holding a slot
    would keep gRPC's share of a batch to --max_threads requests.
    """

    def __init__(self, threads: int, queue: int = 0) -> None:
        # Threads for the work, the open streams, and the requests waiting
        # for a slot (as many as admission lets a model hold): the server
        # takes no more RPCs than that (grpc's maximum_concurrent_rpcs), so no
        # RPC ever queues unseen in grpc's executor.
        self.pool_size = threads + MAX_STREAMS + queue
        self._slots = threading.BoundedSemaphore(threads)
        self._open = 0
        self._open_lock = threading.Lock()
        self._wrapped: dict[str, Any] = {}
        self._held = threading.local()

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        method = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = continuation(details)
            if handler is None or handler.request_streaming != handler.response_streaming:
                return handler  # unknown method (UNIMPLEMENTED), or no such RPC here
            wrapped = self._wrap(handler) if method.endswith(INFERENCE_METHODS) else handler
            self._wrapped[method] = wrapped
        return wrapped

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Give this thread's slot back while it waits (for its batch, say)."""
        if not getattr(self._held, "count", 0):
            yield
            return
        self._slots.release()
        try:
            yield
        finally:
            self._slots.acquire()

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[None]:
        """Hold one of --max_threads slots (at once if this thread holds one already).

        DeadlineExceeded if none frees up within `timeout` seconds.
        """
        if getattr(self._held, "count", 0):
            yield
            return
        if not self._slots.acquire(timeout=timeout):
            raise DeadlineExceeded("the deadline passed while the request waited for a thread")
        self._held.count = 1
        try:
            yield
        finally:
            self._held.count = 0
            self._slots.release()

    def _wrap(self, handler: Any) -> Any:
        if not handler.request_streaming:
            # A unary inference takes its slot itself, once admitted
            # (grpc_servicer.InferenceServicer.ModelInfer): its wait is then
            # bounded by the model's queue and by its deadline.
            return handler
        stream = handler.stream_stream

        def run_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            with self._open_lock:
                refused = self._open >= MAX_STREAMS
                self._open += 0 if refused else 1
            if refused:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{MAX_STREAMS} streams are open, the most this server takes",
                )
            try:
                yield from stream(_one_slot_each(requests, self.slot), context)
            finally:
                with self._open_lock:
                    self._open -= 1

        return handler._replace(stream_stream=run_stream)


def _one_slot_each(
    requests: Iterable[Any], slot: Callable[..., AbstractContextManager[None]]
) -> Iterator[Any]:
    """Each request holds a slot from its arrival until the stream asks for the next."""
    for request in requests:
        with slot():
            yield request
