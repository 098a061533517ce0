"""An access log line per HTTP request, in the format given by `--access_log_format`.

KServe formats its access log with asgi-logger's gunicorn-style atoms
(kserve/protocol/rest/server.py, RESTServer.create_application), so the same
format string gives the same line here. Atoms: h remote address, t time,
r request line, m method, U path, q query, H protocol, s status, B and b
response bytes, f referer, a user agent, T seconds, M milliseconds,
D microseconds, L seconds with decimals, p process id, {name}i a request
header, {name}o a response header.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("predictors.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_HEADER_ATOM = re.compile(r"%\(\{([^}]+)\}([io])\)s")


class AccessLog:
    """ASGI middleware; the format is compiled once, each request fills a dict."""

    def __init__(self, app: App, fmt: str) -> None:
        self.app = app
        # `%({X-Request-Id}i)s` -> `%(in:x-request-id)s`: plain %-formatting then fills it.
        self.fmt = _HEADER_ATOM.sub(
            lambda m: f"%({'in' if m[2] == 'i' else 'out'}:{m[1].lower()})s", fmt
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        sent: dict[str, Any] = {"status": 500, "bytes": 0, "headers": []}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                sent["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            log.info(self.fmt, _Atoms(scope, sent, time.perf_counter() - start))


class _Atoms(dict[str, str]):
    """The values of one request's atoms, computed when the format asks for them."""

    def __init__(self, scope: Scope, sent: dict[str, Any], seconds: float) -> None:
        super().__init__()
        self.scope, self.sent, self.seconds = scope, sent, seconds

    def __bool__(self) -> bool:
        # logging formats with a mapping only if the mapping is truthy.
        return True

    def __missing__(self, atom: str) -> str:
        scope, sent = self.scope, self.sent
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "")
        protocol = f"HTTP/{scope.get('http_version', '1.1')}"
        client = scope.get("client") or ("-", 0)
        if atom.startswith(("in:", "out:")):
            kind, _, name = atom.partition(":")
            headers = scope.get("headers", []) if kind == "in" else sent["headers"]
            wanted = name.encode("latin-1")
            return next((v.decode("latin-1") for k, v in headers if k.lower() == wanted), "-")
        values = {
            "h": str(client[0]),
            "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
            "r": f"{scope.get('method', '-')} {path}{'?' + query if query else ''} {protocol}",
            "m": scope.get("method", "-"),
            "U": path,
            "q": query,
            "H": protocol,
            "s": str(sent["status"]),
            "B": str(sent["bytes"]),
            "b": str(sent["bytes"] or "-"),
            "f": self["in:referer"],
            "a": self["in:user-agent"],
            "T": str(int(self.seconds)),
            "M": str(int(self.seconds * 1000)),
            "D": str(int(self.seconds * 1_000_000)),
            "L": f"{self.seconds:.6f}",
            "p": f"<{os.getpid()}>",
        }
        return values.get(atom, "-")
