"""HTTP shaping shared by every route: JSON answers, the one error answer, body reading.

Every error the gateway answers, on every route, goes through :func:`error_response`:
``{"error": "<message>"}`` with its status (and ``Retry-After`` where the error says when
to come back, ``WWW-Authenticate`` where it asks for an API key). Domain errors get their
status from :func:`gateway.errors.http_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.contracts.problems import ContractViolation, Problem
from gateway.errors import GatewayError, PayloadTooLarge, UnsupportedEncoding, http_status
from gateway.service.pipeline import PredictionService
from gateway.wire.compression import (
    GZIP_MIN_BYTES,
    EncodingError,
    InflatedTooLarge,
    InflateError,
    Inflater,
    accepts_gzip,
    gzip_body,
)

JSON = "application/json"
INTERNAL_ERROR = "internal error; see the gateway log"


def service_of(request: Request) -> PredictionService:
    """The running service, built by the app's lifespan."""
    service: PredictionService = request.app.state.gateway
    return service


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer; ``body`` may be pre-encoded bytes."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status, headers=headers, media_type=JSON)


def error_response(
    error: GatewayError | str, status: int | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    """The gateway's error answer: a domain ``error`` (status from the errors table), or a
    message with its ``status``."""
    if isinstance(error, GatewayError):
        message, status = error.message, http_status(error)
        retry_after = getattr(error, "retry_after_seconds", None)  # shed or rate limited
        if retry_after is not None:
            headers = {**(headers or {}), "retry-after": str(retry_after)}
        challenge = getattr(error, "challenge", None)  # no valid API key
        if challenge is not None:
            headers = {**(headers or {}), "www-authenticate": challenge}
    else:
        message = error
    return json_response({"error": message}, status or 500, headers)


def gzip_large(response: Response, accept_encoding: str | None) -> None:
    """Gzip ``response``'s body in place when the client accepts gzip and the body is at
    least :data:`~gateway.wire.compression.GZIP_MIN_BYTES` (small answers gain nothing).

    ``Vary: Accept-Encoding`` is set either way: the answer depends on the header.
    """
    headers = response.headers
    headers["vary"] = "accept-encoding"
    body = response.body
    if len(body) < GZIP_MIN_BYTES or not accepts_gzip(accept_encoding):
        return
    compressed = gzip_body(bytes(body))
    response.body = compressed
    headers["content-encoding"] = "gzip"
    headers["content-length"] = str(len(compressed))


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes.

    A ``Content-Encoding: gzip`` or ``deflate`` body is inflated as it arrives, and the
    limit holds for the inflated bytes too: a small body that inflates past it is refused
    after ``limit`` bytes of output (:mod:`gateway.wire.compression`). Another encoding
    is 415; data that does not inflate is 400.
    """
    headers = request.headers
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes exceeds the limit of {limit} bytes")
    encoding = headers.get("content-encoding")
    try:
        inflater = None if encoding is None else Inflater.for_encoding(encoding, limit)
    except EncodingError as exc:
        raise UnsupportedEncoding(f"body: {exc}") from exc
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body: exceeds the limit of {limit} bytes")
            chunks.append(chunk if inflater is None else inflater.feed(chunk))
        if inflater is not None:
            chunks.append(inflater.finish())
    except InflatedTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from exc
    except InflateError as exc:
        raise ContractViolation([Problem(f"{exc} (rule: content_encoding)", "body", "content_encoding")]) from exc  # fmt: skip
    return b"".join(chunks)
