"""The V2 gRPC messages and service: Triton's definition, as tritonclient ships it.

Triton's `inference.GRPCInferenceService` is a superset of KServe's (same
package, service, message names and field numbers, plus the model
configuration, statistics, repository, streaming and shared-memory RPCs), so
KServe's clients, Triton's clients and grpcurl all speak to it. KServe's
generated copy (`kserve.protocol.grpc.grpc_predict_v2_pb2`) registers the same
`inference.*` names, and protobuf refuses two definitions of one name in a
process: so modelplane's server uses this one and never imports kserve.
"""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2 as config_pb
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

__all__ = ["config_pb", "pb", "pb_grpc"]
