"""HTTP shaping shared by every route: JSON answers, the one error answer, body reading.

Every error the gateway answers, on every route, goes through :func:`error_response`:
``{"error": "<message>"}`` with its status (and ``Retry-After`` where the error says when
to come back). Domain errors get their status from :func:`gateway.errors.http_status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, PayloadTooLarge, http_status
from gateway.service.pipeline import PredictionService

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
        retry_after = getattr(error, "retry_after_seconds", None)  # a shed request
        if retry_after is not None:
            headers = {**(headers or {}), "retry-after": str(retry_after)}
    else:
        message = error
    return json_response({"error": message}, status or 500, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
