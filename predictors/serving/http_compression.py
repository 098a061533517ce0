"""HTTP compression as an ASGI middleware, for every route: compressed requests, compressed answers.

A request with `Content-Encoding: gzip|deflate` is inflated (bounded,
protocol.compression) before any route reads it, so the infer route's
Inference-Header-Content-Length, JSON and binary tensors all refer to the
inflated body, as in Triton.

Answers are compressed on the infer routes only, as Triton does, when the
request's Accept-Encoding allows gzip or deflate and the body is at least
MIN_COMPRESSED_BYTES. Only those: tritonclient's asyncio client (aiohttp)
asks for gzip on every request but inflates only inference results, so a
compressed model configuration would be unreadable to it. Below the minimum,
compressing costs more time than the bytes save. A request with neither
header passes straight through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from predictors.errors import InvalidInput
from predictors.protocol import compression

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIN_COMPRESSED_BYTES = 1024


class Compression:
    def __init__(
        self,
        app: ASGIApp,
        max_inflated: int = compression.MAX_INFLATED_BYTES,
        min_size: int = MIN_COMPRESSED_BYTES,
    ) -> None:
        self.app = app
        self.max_inflated = max_inflated
        self.min_size = min_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_encoding = accept = None
        for key, value in scope["headers"]:
            if key == b"content-encoding":
                content_encoding = value.decode("latin-1").strip().lower()
            elif key == b"accept-encoding":
                accept = value.decode("latin-1")
        if content_encoding not in (None, "", "identity"):
            try:
                body = await self._inflate(receive, content_encoding)
            except InvalidInput as exc:
                await _error(send, exc)
                return
            headers = [
                (k, v)
                for k, v in scope["headers"]
                if k not in (b"content-encoding", b"content-length")
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            scope = dict(scope, headers=headers)
            receive = _replay(body, receive)
        encoding = None
        if accept and scope["path"].endswith("/infer"):
            encoding = compression.choose_encoding(accept)
        if encoding is not None:
            send = self._compressing(send, encoding)
        await self.app(scope, receive, send)

    async def _inflate(self, receive: Receive, encoding: str) -> bytes:
        inflater = compression.Inflater(encoding, self.max_inflated)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise InvalidInput("the client went away before sending the whole body")
            inflater.feed(message.get("body", b""))
            if not message.get("more_body", False):
                return inflater.finish()

    def _compressing(self, send: Send, encoding: str) -> Send:
        start: Message | None = None
        chunks: list[bytes] = []

        async def compressing_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            already = any(k == b"content-encoding" for k, _ in headers)
            if not already and len(body) >= self.min_size:
                body = compression.compress(body, encoding)
                headers.append((b"content-encoding", encoding.encode()))
            headers.append((b"vary", b"Accept-Encoding"))
            headers.append((b"content-length", str(len(body)).encode()))
            await send(dict(start, headers=headers))
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return compressing_send


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect, when it comes

    return replay


async def _error(send: Send, exc: InvalidInput) -> None:
    status = 400
    if isinstance(exc, compression.TooLarge):
        status = 413
    elif isinstance(exc, compression.UnsupportedEncoding):
        status = 415
    body = orjson.dumps({"error": exc.message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
