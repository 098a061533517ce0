"""gRPC health checking and server reflection, so probes and grpcurl need no proto files.

Health (grpc.health.v1.Health/Check, the protocol Kubernetes `grpc:` probes
and grpc_health_probe speak): the service "" or `inference.GRPCInferenceService`
is the server (SERVING when /v2/health/ready would be 200), a model's name is
that model (SERVING once it is loaded, verified and warmed up, NOT_SERVING
before, while loading, after a failure and while draining); an unknown name
is NOT_FOUND, as the health protocol asks. The status is computed at each
Check, so it can never lag behind readiness. Watch is not served (probes
use Check; a Watch would hold a gRPC handler thread for as long as it lasts).

Reflection (grpc.reflection.v1alpha and v1) lists the inference and health
services, so `grpcurl -plaintext host:8081 list` and `describe` just work.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from predictors.errors import ModelNotFound
from predictors.protocol.grpc_messages import pb
from predictors.serving.repository import ModelRepository

INFERENCE_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthServicer(health_pb2_grpc.HealthServicer):
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        service = request.service
        if service in ("", INFERENCE_SERVICE):
            ready = self.repository.server_ready()
        else:
            try:
                model = self.repository.resolve(service)
            except ModelNotFound as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            ready = model.ready and not self.repository.draining
        return health_pb2.HealthCheckResponse(status=SERVING if ready else NOT_SERVING)


def add_health_and_reflection(server: grpc.Server, repository: ModelRepository) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(repository), server)
    health_service = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection(
        (INFERENCE_SERVICE, health_service, reflection.SERVICE_NAME), server
    )
