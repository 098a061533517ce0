"""The serving layer: models made reachable over V2 HTTP and gRPC.

- repository.py  the models a server holds, by name and version; readiness,
                 draining and server metadata
- requests.py    one inference request's bookkeeping, shared by both transports
- status.py      modelplane's errors as HTTP statuses and gRPC codes
- http_app.py    the V2 REST endpoints (FastAPI) and /metrics
- grpc_servicer.py  the V2 gRPC service on grpc's threaded server
- server.py      `modelplane serve`: both transports, signals, draining
- kserve_adapter.py  the KServe edge: a served model as a kserve.Model
"""
