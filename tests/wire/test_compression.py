"""Request inflation within a limit, and the gzip choice for answers."""

from __future__ import annotations

import gzip
import zlib

import pytest

from gateway.wire.compression import (
    EncodingError,
    InflatedTooLarge,
    InflateError,
    Inflater,
    accepts_gzip,
    inflate,
)

BODY = b'{"inputs": [' + b"1.0, " * 2000 + b"]}"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # a raw deflate stream
        ("identity", lambda data: data),
    ],
)
def test_bodies_inflate_in_chunks(encoding: str, compress: object) -> None:
    assert callable(compress)
    data = compress(BODY)
    inflater = Inflater.for_encoding(encoding, limit=len(BODY))
    if inflater is None:
        assert encoding == "identity"
        return
    pieces = [inflater.feed(data[i : i + 7]) for i in range(0, len(data), 7)]
    assert b"".join(pieces) + inflater.finish() == BODY


def test_a_bomb_stops_at_the_limit_without_inflating_the_rest() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB that inflates to 50 MB
    inflater = Inflater.for_encoding("gzip", limit=100_000)
    assert inflater is not None
    with pytest.raises(InflatedTooLarge, match="inflates past the limit of 100000 bytes"):
        for i in range(0, len(bomb), 4096):
            inflater.feed(bomb[i : i + 4096])
    assert inflater.size <= 100_001  # never more than the limit and one byte was inflated


def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    assert inflate(gzip.compress(BODY), "gzip", len(BODY)) == BODY
    with pytest.raises(InflatedTooLarge):
        inflate(gzip.compress(BODY), "gzip", len(BODY) - 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "not valid gzip data"),
        (gzip.compress(BODY)[:-12], "truncated"),
        (gzip.compress(b"{}") + b"junk", "data after the end"),
    ],
)
def test_invalid_data_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InflateError, match=message):
        inflate(data, "gzip", 1_000_000)


def test_unknown_encodings_are_refused_by_name() -> None:
    with pytest.raises(EncodingError, match="'br' is not supported; use one of gzip, deflate"):
        Inflater.for_encoding("br", 10)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [("gzip", True), ("br, gzip;q=0.5", True), ("*", True), ("gzip;q=0", False),
     ("deflate", False), (None, False), ("", False)],
)  # fmt: skip
def test_accept_encoding(header: str | None, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted
