"""`modelplane serve`: V2 over HTTP and gRPC for every model in a store.

Both listeners open at once (models load in the background; readiness says
when each is ready), serve `/versions/{v}`, and drain in-flight requests on
SIGTERM before exiting. This is not a kserve.ModelServer: KServe's module
parses sys.argv and registers its own copy of the `inference.*` protobufs at
import, and the server it starts runs sync handlers on the event loop. The
flags are KServe's (predictors.settings), so a ServingRuntime passes the
arguments it passes to any KServe predictor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import prometheus_client
import uvicorn

from predictors.errors import Refused
from predictors.model import ServedModel
from predictors.model_store import StoreError, discover
from predictors.serving.grpc_servicer import GrpcOptions, PortInUse, create_grpc_server
from predictors.serving.http_app import create_app
from predictors.serving.limits import header_limited_protocol
from predictors.serving.repository import ModelRepository
from predictors.settings import ServeSettings

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """Uvicorn without its own signal handlers: the model server drains both protocols."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_models(settings: ServeSettings) -> list[ServedModel]:
    stored = discover(settings.model_store, settings.models, settings.bare_hints)
    if not stored:
        raise StoreError(f"no models found in {settings.model_store}")
    if settings.model_name:
        names = {m.name for m in stored}
        if len(names) != 1:
            raise StoreError(
                f"--model_name {settings.model_name} needs exactly one model in "
                f"{settings.model_store}, found {', '.join(sorted(names))} (use --models)"
            )
    return [
        ServedModel(s, settings.runtime, settings.model_name, settings.batching, settings.admission)
        for s in stored
    ]


class ModelplaneServer:
    def __init__(self, settings: ServeSettings, models: list[ServedModel]) -> None:
        if settings.workers != 1:
            # One process per pod: inference already runs off the event loop
            # in threads, metrics stay exact without a multiprocess registry,
            # and the model is in memory once. Scale with replicas instead.
            raise Refused("--workers must be 1: run more replicas to scale (see README)")
        self.settings = settings
        self.repository = ModelRepository(models)
        self._stop = asyncio.Event()

    def start(self) -> None:
        # `_created` samples double the series and no dashboard reads them.
        prometheus_client.disable_created_metrics()
        for flag in self.settings.ignored_flags:
            log.info("--%s is a KServe transformer flag; a predictor ignores it", flag)
        if self.settings.event_loop == "uvloop":
            import uvloop

            uvloop.run(self.serve())
        else:
            asyncio.run(self.serve())

    def stop(self, sig: int) -> None:
        log.info("received %s: draining in-flight requests", signal.Signals(sig).name)
        self.repository.draining = True
        self._stop.set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        if s.max_asyncio_workers:
            # KServe's --max_asyncio_workers sizes the loop's default executor
            # (ModelServer.setup_event_loop); models run on their own executors.
            loop.set_default_executor(ThreadPoolExecutor(s.max_asyncio_workers))
        # Bind both ports before serving either: a taken port fails the start
        # at once, and no client ever reaches a half-started server.
        http_socket = bind_http(s.host, s.http_port)
        grpc_server = None
        if s.enable_grpc:
            try:
                grpc_server = create_grpc_server(self.repository, grpc_options(s))
            except PortInUse:
                http_socket.close()
                raise
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        http = _Uvicorn(
            uvicorn.Config(
                create_app(
                    self.repository,
                    docs=s.enable_docs_url,
                    log_latency=s.enable_latency_logging,
                    access_log_format=s.access_log_format,
                    limits=s.http_limits,
                ),
                # httptools, refusing unfinished headers past the limit (431).
                http=header_limited_protocol(s.http_limits.max_header_bytes),
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=int(s.grace_period),
                timeout_keep_alive=s.timeout_keep_alive,
                ssl_certfile=str(s.ssl_certfile) if s.tls else None,
                ssl_keyfile=str(s.ssl_keyfile) if s.tls else None,
            )
        )
        scheme = "https" if s.tls else "http"
        log.info("HTTP listening on %s://%s:%d", scheme, s.host, s.http_port)
        if grpc_server is not None:
            grpc_server.start()
            log.info("gRPC listening on %s:%d%s", s.host, s.grpc_port, " (TLS)" if s.tls else "")
        http_task = asyncio.create_task(http.serve(sockets=[http_socket]), name="http")
        load_task = asyncio.create_task(self.repository.load_all(), name="load-models")
        stop_task = asyncio.create_task(self._stop.wait())
        await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if http_task.done() and not self._stop.is_set():
            # HTTP stopped by itself (a bad certificate, say): fail loudly, not half-up.
            self.repository.draining = True
            if grpc_server is not None:
                grpc_server.stop(0)
            load_task.cancel()
            http_task.result()
            raise SystemExit("HTTP server stopped unexpectedly")

        # Drain: both servers stop taking new requests and wait for the ones
        # in flight (up to the grace period); batchers finish their queues.
        http.should_exit = True
        stops: list[asyncio.Future[Any]] = [http_task]
        if grpc_server is not None:
            stopped = grpc_server.stop(s.grace_period)  # a threading.Event
            stops.append(asyncio.ensure_future(asyncio.to_thread(stopped.wait)))
        await asyncio.gather(*stops, return_exceptions=True)
        load_task.cancel()
        self.repository.close()
        log.info("stopped")


def bind_http(host: str, port: int) -> socket.socket:
    """The HTTP listening socket, bound and listening (uvicorn serves on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
    # when the protocol says TCP (asyncio base_events._set_nodelay). Without
    # it every kept-alive request after the first waited ~40 ms for Nagle's
    # algorithm and the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR: restart over TIME_WAIT; never SO_REUSEPORT, which lets
        # a second server share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortInUse(f"HTTP cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def grpc_options(s: ServeSettings) -> GrpcOptions:
    host = f"[{s.host}]" if ":" in s.host else s.host
    tls = None
    if s.tls:
        assert s.ssl_certfile is not None and s.ssl_keyfile is not None
        tls = (s.ssl_certfile.read_bytes(), s.ssl_keyfile.read_bytes())
    return GrpcOptions(
        address=f"{host}:{s.grpc_port}",
        threads=s.grpc_threads,
        max_send_message_length=s.grpc_max_send_message_length,
        max_receive_message_length=s.grpc_max_receive_message_length,
        tls=tls,
        log_latency=s.enable_latency_logging,
        queue=s.admission.max_requests,
    )
