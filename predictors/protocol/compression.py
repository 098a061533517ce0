"""HTTP body compression: gzip and deflate, both ways, with a bound on what a body inflates to.

What tritonclient sends with `request_compression_algorithm` and asks for
with `response_compression_algorithm`: `Content-Encoding: gzip` (RFC 1952)
or `deflate` (RFC 9110: the zlib format, RFC 1950, which is what
`zlib.compress` writes). Inflating stops as soon as the output would pass
the bound, so a small body that would inflate to gigabytes (a zip bomb)
costs at most the bound in memory; `TooLarge` is then a 413.
"""

from __future__ import annotations

import zlib

from predictors import errors
from predictors.errors import InvalidInput

ENCODINGS = ("gzip", "deflate")
#: what a compressed request body may inflate to
MAX_INFLATED_BYTES = 64 * 1024 * 1024
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class TooLarge(errors.TooLarge):
    """The body inflates past the bound (HTTP 413)."""


class UnsupportedEncoding(InvalidInput):
    """A Content-Encoding other than gzip, deflate or identity (HTTP 415)."""


class Inflater:
    """Inflate a body chunk by chunk, never holding more than `limit` bytes of output."""

    def __init__(self, encoding: str, limit: int = MAX_INFLATED_BYTES) -> None:
        encoding = encoding.strip().lower()
        if encoding not in _WBITS:
            raise UnsupportedEncoding(
                f"Content-Encoding {encoding!r} is not supported; use gzip or deflate"
            )
        self.encoding = encoding
        self._limit = limit
        self._inflate = zlib.decompressobj(_WBITS[encoding])
        self._out = bytearray()

    def feed(self, chunk: bytes) -> None:
        data = chunk
        while data:
            room = self._limit - len(self._out)
            try:
                # One byte more than there is room for tells "too large" apart from "full".
                self._out += self._inflate.decompress(data, room + 1)
            except zlib.error as exc:
                raise InvalidInput(
                    f"request body is not valid {self.encoding} data: {exc}"
                ) from exc
            if len(self._out) > self._limit:
                raise TooLarge(
                    f"request body inflates past {self._limit} bytes, the most a compressed "
                    "body may hold"
                )
            data = self._inflate.unconsumed_tail
            if self._inflate.eof:
                break

    def finish(self) -> bytes:
        if not self._inflate.eof:
            raise InvalidInput(f"request body ends before its {self.encoding} data does")
        return bytes(self._out)


def inflate(body: bytes, encoding: str, limit: int = MAX_INFLATED_BYTES) -> bytes:
    inflater = Inflater(encoding, limit)
    inflater.feed(body)
    return inflater.finish()


def choose_encoding(accept_encoding: str) -> str | None:
    """The encoding to answer with, from an Accept-Encoding header (q=0 refuses one)."""
    best: tuple[float, bool] | None = None
    chosen = None
    for item in accept_encoding.split(","):
        token, _, params = item.strip().partition(";")
        token = token.strip().lower()
        if token not in ENCODINGS:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        rank = (quality, token == "gzip")  # higher q first; on a tie, gzip
        if quality > 0 and (best is None or rank > best):
            best, chosen = rank, token
    return chosen


def compress(body: bytes, encoding: str) -> bytes:
    """Level 1: a model server answers latency-bound calls; most of the gain is there."""
    if encoding == "gzip":
        packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return packer.compress(body) + packer.flush()
    return zlib.compress(body, 1)
