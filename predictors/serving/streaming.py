"""gRPC `ModelStreamInfer`: Triton's bidirectional stream of inference requests.

Each request on the stream takes the servicer's own ModelInfer path
(validation, batching, metrics) and gets exactly one response, in order. A
request that fails gets a response whose `error_message` says why (and whose
`infer_response` carries its id, model and version, so a client can tell
which one failed), and the stream goes on: a bad request never ends it.

The requests of one stream run one after another in the handler thread, as
each unary call does; concurrency comes from several streams or calls. Each
open stream holds one of the server's `--max_threads` handler threads for as
long as it is open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import grpc

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
