"""What one HTTP request may cost the server before the model sees it: bounded, with clear errors.

The memory budget (README, "Limits"): a request body is read up to
`--max_request_bytes` (64 MiB, 413 past it, before reading further when
Content-Length says so); its JSON part up to `--max_json_bytes` (16 MiB: JSON
decoding holds about 8.5x the text while numpy converts it, ~140 MB); its
headers up to `--max_header_bytes` (64 KiB, 431: unfinished headers are
otherwise buffered without end). The chart's ONNX pod limit is 1 GiB, so one
request at the limits leaves room for the model and the others in flight.
Large bodies are decoded off the event loop, so health checks never wait
behind them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from predictors.errors import TooLarge

MiB = 1024 * 1024


@dataclass(frozen=True)
class HttpLimits:
    max_request_bytes: int = 64 * MiB
    max_json_bytes: int = 16 * MiB
    max_header_bytes: int = 64 * 1024
    #: bodies larger than this are decoded in a worker thread, not on the event loop
    decode_in_thread_bytes: int = 256 * 1024


async def read_body(request: Request, limits: HttpLimits) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise TooLarge(_too_large(int(declared), limits.max_request_bytes))
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_request_bytes:
            raise TooLarge(_too_large(size, limits.max_request_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


def check_json_size(body: bytes, header_length: str | None, limits: HttpLimits) -> None:
    size = len(body)
    if header_length is not None and header_length.isdigit():
        size = min(size, int(header_length))
    if size > limits.max_json_bytes:
        raise TooLarge(
            f"the JSON part of the request is {size} bytes, more than the {limits.max_json_bytes} "
            "this server decodes; send tensors as binary data (binary_data_size)"
        )


def _too_large(size: int, limit: int) -> str:
    return f"the request body is {size} bytes or more, more than the {limit} this server takes"


def header_limited_protocol(max_header_bytes: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing requests whose headers run past the limit."""

    class HeaderLimitedProtocol(HttpToolsProtocol):
        # Two counts: the bytes received while the headers are unfinished (a
        # client that never finishes them), and the headers parsed (one that
        # sends them whole, too many or too long).
        _in_headers = 0
        _parsed = 0
        _headers_done = False
        _too_large = False

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers, self._parsed, self._headers_done = 0, 0, False

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value))
            super().on_header(name, value)

        def _count(self, size: int) -> None:
            self._parsed += size
            if self._parsed > max_header_bytes:
                self._too_large = True
                # httptools turns this into a parser error; uvicorn answers
                # parser errors with send_400_response, which sends 431 here.
                raise ValueError("request headers too large")

        def on_headers_complete(self) -> None:
            self._headers_done = True
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            if self._too_large:
                self._send_431()
            else:
                super().send_400_response(msg)

        def data_received(self, data: bytes) -> None:
            if self._too_large:
                return
            if not self._headers_done:
                self._in_headers += len(data)
            super().data_received(data)
            if not self._headers_done and self._in_headers > max_header_bytes:
                self._too_large = True
                self._send_431()

        def _send_431(self) -> None:
            message = b'{"error":"request headers larger than the server takes"}'
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(message)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + message
            )
            self.transport.close()

    return HeaderLimitedProtocol
