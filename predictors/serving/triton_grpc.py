"""Triton's extension RPCs of `inference.GRPCInferenceService`, each delegating to its module.

The base of the servicer (predictors.serving.grpc_servicer): the core V2
RPCs live there, these beside them. Each RPC is one call into its extension
(model_config, statistics, repository_extension, shared_memory, streaming),
with errors turned into gRPC status codes as the core RPCs turn theirs. RPCs
not served here (trace and log settings) answer UNIMPLEMENTED, the
generated servicer's default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from predictors.protocol.grpc_messages import pb_grpc
from predictors.serving import model_config, repository_extension, shared_memory, statistics
from predictors.serving.repository import ModelRepository
from predictors.serving.status import client_message, grpc_code, is_server_fault
from predictors.serving.streaming import stream_infer

log = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    if is_server_fault(exc):
        log.exception("gRPC request failed", exc_info=exc)
    context.abort(grpc_code(exc), client_message(exc))
    raise AssertionError("unreachable: context.abort raises")


class TritonExtensionsServicer(pb_grpc.GRPCInferenceServiceServicer):
    repository: ModelRepository

    def _call(
        self, handler: Callable[[Any, Any], Any], target: Any, request: Any, context: Any
    ) -> Any:
        try:
            return handler(target, request)
        except Exception as exc:
            _abort(context, exc)

    def ModelConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(model_config.grpc_model_config, self.repository, request, context)

    def ModelStatistics(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(statistics.grpc_model_statistics, self.repository, request, context)

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(repository_extension.grpc_index, self.repository, request, context)

    def RepositoryModelLoad(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(repository_extension.grpc_load, self.repository, request, context)

    def RepositoryModelUnload(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(repository_extension.grpc_unload, self.repository, request, context)

    def ModelStreamInfer(
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        return stream_infer(self.ModelInfer, request_iterator, context)

    def SystemSharedMemoryStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(shared_memory.grpc_status, self._shm, request, context)

    def SystemSharedMemoryRegister(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(shared_memory.grpc_register, self._shm, request, context)

    def SystemSharedMemoryUnregister(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(shared_memory.grpc_unregister, self._shm, request, context)

    def CudaSharedMemoryStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(shared_memory.grpc_cuda_status, self._shm, request, context)

    def CudaSharedMemoryRegister(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(shared_memory.grpc_cuda_register, self._shm, request, context)

    def CudaSharedMemoryUnregister(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._call(shared_memory.grpc_cuda_unregister, self._shm, request, context)

    @property
    def _shm(self) -> shared_memory.SharedMemoryRegistry:
        return self.repository.shared_memory
