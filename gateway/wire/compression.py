"""Request decompression within a size limit, and gzip for large answers.

``Content-Encoding: gzip`` and ``deflate`` (zlib-wrapped, as HTTP means it; a raw
deflate stream is accepted too, as some clients send one) are inflated as the body
arrives, in chunks of at most ``limit + 1`` output bytes, so a small body that inflates
past the limit (a "zip bomb") is refused after ``limit`` bytes of output, never held in
memory whole. Errors are :class:`EncodingError` (unknown encoding), :class:`InflateError`
(not valid data) and :class:`InflatedTooLarge`.

    >>> import gzip
    >>> inflater = Inflater.for_encoding("gzip", limit=100)
    >>> inflater.feed(gzip.compress(b"hello")) + inflater.finish()
    b'hello'
"""

from __future__ import annotations

import gzip
import zlib
from typing import Final

#: Encodings a request body may have (``identity`` is none).
ACCEPTED: Final = ("gzip", "deflate", "identity")
#: Answers at least this large are gzipped for a client that accepts gzip.
GZIP_MIN_BYTES: Final = 1024
# Fast and still ~5-8x on JSON tensors; higher levels cost far more CPU for little.
GZIP_LEVEL: Final = 1


class EncodingError(ValueError):
    """The ``Content-Encoding`` is not one the server decodes."""


class InflateError(ValueError):
    """The body is not valid data of its ``Content-Encoding``."""


class InflatedTooLarge(ValueError):
    """The body inflates past the limit."""


class Inflater:
    """Inflates one body incrementally, refusing more than ``limit`` bytes of output."""

    def __init__(self, wbits: int, limit: int, encoding: str) -> None:
        self.limit = limit
        self.encoding = encoding
        self.size = 0
        self._wbits = wbits
        self._inflater = zlib.decompressobj(wbits)
        self._started = False

    @classmethod
    def for_encoding(cls, encoding: str, limit: int) -> Inflater | None:
        """An inflater for ``encoding`` (``None`` for identity); raise :class:`EncodingError`."""
        name = encoding.strip().lower()
        if name in ("", "identity"):
            return None
        if name in ("gzip", "x-gzip"):
            return cls(zlib.MAX_WBITS | 16, limit, "gzip")
        if name == "deflate":
            return cls(zlib.MAX_WBITS, limit, "deflate")
        raise EncodingError(
            f"Content-Encoding {encoding[:40]!r} is not supported; use one of {', '.join(ACCEPTED)}"
        )

    def feed(self, chunk: bytes) -> bytes:
        """The output of ``chunk``; raise when it is invalid or the total passes the limit."""
        if not self._started and chunk:
            self._started = True
            if self._wbits == zlib.MAX_WBITS and (chunk[0] & 0x0F) != 8:
                # Not a zlib header: a raw deflate stream.
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        parts: list[bytes] = []
        data = chunk
        while data:
            try:
                out = self._inflater.decompress(data, self.limit + 1 - self.size)
            except zlib.error as exc:
                raise InflateError(f"body: not valid {self.encoding} data: {exc}") from exc
            self._count(out)
            parts.append(out)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and (data or self._inflater.unused_data):
                raise InflateError(f"body: data after the end of the {self.encoding} stream")
        return b"".join(parts)

    def finish(self) -> bytes:
        """The last output; raise when the stream ended early."""
        try:
            out = self._inflater.flush()
        except zlib.error as exc:  # pragma: no cover - flush raises only on corrupt state
            raise InflateError(f"body: not valid {self.encoding} data: {exc}") from exc
        self._count(out)
        if self._started and not self._inflater.eof:
            raise InflateError(f"body: the {self.encoding} stream is truncated")
        return out

    def _count(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self.limit:
            raise InflatedTooLarge(
                f"body: inflates past the limit of {self.limit} bytes ({self.encoding})"
            )


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` inflated per ``encoding``, at most ``limit`` bytes (see :class:`Inflater`)."""
    inflater = Inflater.for_encoding(encoding, limit)
    if inflater is None:
        return body
    return inflater.feed(body) + inflater.finish()


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip;q=0`` does not)."""
    if not accept_encoding:
        return False
    for part in accept_encoding.lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            quality = params.strip()
            return not (quality.startswith("q=") and _zero(quality[2:]))
    return False


def gzip_body(body: bytes) -> bytes:
    """``body`` gzipped at the fast level."""
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def _zero(value: str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False
