"""gzip and deflate bodies: they inflate back, and the bound holds while inflating."""

from __future__ import annotations

import gzip
import zlib

import pytest

from predictors.errors import InvalidInput
from predictors.protocol import compression


@pytest.mark.parametrize(
    ("encoding", "pack"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_inflates_what_tritonclient_sends_chunk_by_chunk(encoding: str, pack: object) -> None:
    body = b'{"inputs":[]}' * 1000
    packed = pack(body)  # type: ignore[operator]
    inflater = compression.Inflater(encoding)
    for start in range(0, len(packed), 100):
        inflater.feed(packed[start : start + 100])
    assert inflater.finish() == body
    assert zlib.decompress(compression.compress(body, "deflate")) == body
    assert gzip.decompress(compression.compress(body, "gzip")) == body


def test_a_zip_bomb_stops_at_the_bound() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    inflater = compression.Inflater("gzip", limit=1 << 20)
    with pytest.raises(compression.TooLarge, match="inflates past 1048576 bytes"):
        inflater.feed(bomb)
    assert len(inflater._out) <= (1 << 20) + 1
    exact = compression.inflate(gzip.compress(b"x" * 1000), "gzip", limit=1000)
    assert len(exact) == 1000


def test_bad_bodies_and_encodings() -> None:
    with pytest.raises(InvalidInput, match="not valid gzip data"):
        compression.inflate(b"not gzip at all", "gzip")
    with pytest.raises(InvalidInput, match="ends before its deflate data does"):
        compression.inflate(zlib.compress(b"x" * 1000)[:-6], "deflate")
    with pytest.raises(compression.UnsupportedEncoding, match="'br' is not supported"):
        compression.Inflater("br")


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("gzip, deflate", "gzip"),
        ("deflate;q=1.0, gzip;q=0.5", "deflate"),
        ("gzip;q=0, deflate", "deflate"),
        ("br, zstd", None),
        ("identity", None),
    ],
)
def test_choose_encoding(header: str, chosen: str | None) -> None:
    assert compression.choose_encoding(header) == chosen
