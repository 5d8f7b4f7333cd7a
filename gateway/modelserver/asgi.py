"""The HTTP edge: a lean ASGI dispatcher over the data plane.

Routes (OIP v2 REST, plus test instrumentation under ``/_debug`` unless disabled)::

    GET  /v2                                          server metadata
    GET  /v2/health/live | /v2/health/ready           200, or 503 when not ready
    GET  /v2/models/{name}[/versions/{v}]             model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready       200, or 503 when not ready
    POST /v2/models/{name}[/versions/{v}]/infer       inference
    GET  /_debug/stats                                requests received, last headers
    GET|POST /_debug/fault                            read or replace the fault config

A hand-written dispatcher rather than a framework router because the server's job is to
be a fast, predictable upstream in load tests; paths are matched by splitting once.
Errors are ``{"error": "..."}`` with the status from ``_STATUS``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson

from gateway.modelserver.dataplane import DataPlane
from gateway.modelserver.errors import (
    InferenceFailed,
    InjectedFault,
    InvalidFaultConfig,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotReady,
    ModelServerError,
    NotFound,
    PayloadTooLarge,
)
from gateway.modelserver.faults import FaultConfig
from gateway.modelserver.stats import DebugStats
from gateway.wire.compression import EncodingError, InflatedTooLarge, InflateError, inflate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger(__name__)

#: Largest request body accepted, after decompression.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024

#: Error class -> HTTP status, resolved through the class's MRO.
_STATUS: Final[dict[type[ModelServerError], int]] = {
    InvalidRequest: 400,
    InvalidFaultConfig: 400,
    NotFound: 404,
    MethodNotAllowed: 405,
    PayloadTooLarge: 413,
    ModelNotReady: 503,
    InferenceFailed: 500,
    ModelServerError: 500,
}
_NOT_READY: Final = 503

_JSON: Final = (b"content-type", b"application/json")
_OCTETS: Final = (b"content-type", b"application/octet-stream")
_MODELS_PREFIX: Final = "/v2/models/"


class _Disconnected(Exception):
    """The client went away before sending the whole body."""


class ModelServerApp:
    """The ASGI application; the lifespan loads the model and flips readiness."""

    def __init__(self, plane: DataPlane, stats: DebugStats, *, debug_endpoints: bool) -> None:
        self.plane = plane
        self.stats = stats
        self.startup_error: str | None = None
        self._debug_endpoints = debug_endpoints
        self._server_metadata = orjson.dumps(plane.server_metadata())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.plane.load()
                except Exception as exc:
                    # Report, then re-raise: servers stop on the report, and test
                    # clients surface the exception itself.
                    self.startup_error = str(exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.plane.unload()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra: list[tuple[bytes, bytes]] = []
        try:
            status, body, content_type = await self._route(scope, receive, extra)
        except _Disconnected:
            return
        except ModelServerError as exc:
            status = _status_for(exc)
            body, content_type = orjson.dumps({"error": exc.message}), _JSON
            if isinstance(exc, MethodNotAllowed):
                extra.append((b"allow", ", ".join(exc.allowed).encode()))
            if isinstance(exc, InferenceFailed) and not isinstance(exc, InjectedFault):
                logger.warning("%s %s: %s", scope["method"], scope["path"], exc.message)
        except Exception:
            # Never a stack trace in the body; the log keeps it for the operator.
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            status, body, content_type = 500, b'{"error":"internal server error"}', _JSON
        headers = [content_type, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(
        self, scope: Scope, receive: Receive, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes, tuple[bytes, bytes]]:
        path: str = scope["path"]
        method: str = scope["method"]
        plane = self.plane
        if path.startswith(_MODELS_PREFIX):
            name, _, rest = path[len(_MODELS_PREFIX) :].partition("/")
            version: str | None = None
            if rest.startswith("versions/"):
                version, _, rest = rest[len("versions/") :].partition("/")
            if rest == "infer":
                _allow(method, "POST")
                self.stats.record_infer(scope["headers"])
                body, header_length = await _read_infer_body(scope, receive)
                response = await plane.infer(name, version, body, header_length)
                if response.json_length is None:
                    return 200, response.body, _JSON
                extra.append(
                    (b"inference-header-content-length", str(response.json_length).encode())
                )
                return 200, response.body, _OCTETS
            if rest == "ready":
                _allow(method, "GET")
                ready = plane.model_ready(name, version)
                return (
                    (200 if ready else _NOT_READY),
                    orjson.dumps({"name": name, "ready": ready}),
                    _JSON,
                )
            if rest == "":
                _allow(method, "GET")
                return 200, orjson.dumps(plane.model_metadata(name, version)), _JSON
        elif path in ("/v2", "/v2/"):
            _allow(method, "GET")
            return 200, self._server_metadata, _JSON
        elif path == "/v2/health/live":
            _allow(method, "GET")
            return 200, b'{"live":true}', _JSON
        elif path == "/v2/health/ready":
            _allow(method, "GET")
            if plane.ready:
                return 200, b'{"ready":true}', _JSON
            return _NOT_READY, b'{"ready":false}', _JSON
        elif self._debug_endpoints and path == "/_debug/stats":
            _allow(method, "GET")
            return 200, orjson.dumps(self.stats.to_dict()), _JSON
        elif self._debug_endpoints and path == "/_debug/fault":
            _allow(method, "GET", "POST")
            if method == "POST":
                body = await _read_body(receive)
                plane.faults.configure(FaultConfig.from_mapping(_loads(body)))
            return 200, orjson.dumps(plane.faults.config.to_dict()), _JSON
        raise NotFound(f"no route for {path}")


def _status_for(exc: ModelServerError) -> int:
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise MethodNotAllowed(f"method {method} is not allowed here", allowed)


def _loads(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc


async def _read_infer_body(scope: Scope, receive: Receive) -> tuple[bytes, int | None]:
    """The (decompressed) body and the binary extension's JSON length, if given."""
    header_length: int | None = None
    encoding = b""
    for name, value in scope["headers"]:
        if name == b"inference-header-content-length":
            try:
                header_length = int(value)
            except ValueError as exc:
                raise InvalidRequest("Inference-Header-Content-Length must be an integer") from exc
        elif name == b"content-encoding":
            encoding = value.strip().lower()
        elif name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    body = await _read_body(receive)
    if encoding in (b"", b"identity"):
        return body, header_length
    try:
        return inflate(body, encoding.decode("latin-1"), MAX_BODY_BYTES), header_length
    except EncodingError as exc:
        raise InvalidRequest(
            f"unsupported Content-Encoding {encoding.decode('latin-1')!r}"
        ) from exc
    except InflateError as exc:
        raise InvalidRequest(f"request body cannot be decompressed: {exc}") from exc
    except InflatedTooLarge as exc:
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes decompressed") from exc


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the common case: the whole body in one message
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
