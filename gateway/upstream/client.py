"""The OIP v2 client for model servers: one pooled aiohttp session, errors translated here.

aiohttp is used on the hot path because httpx's async pool measured 6-20x slower as a
proxy's upstream client on this machine (see docs/architecture.md). Every foreign
exception is translated once, at this boundary, into :mod:`gateway.errors`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import orjson

from gateway.errors import (
    InvalidInput,
    PayloadTooLarge,
    UpstreamBadResponse,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.settings.schema import UpstreamSettings
from gateway.wire.binary import HEADER_LENGTH, BinaryDataError, decode_answer, header_length

SessionFactory = Callable[[], aiohttp.ClientSession]


def default_session() -> aiohttp.ClientSession:
    """The production session: keep-alive pool, no cookie jar, no per-session timeout.

    No ``skip_auto_headers``: aiohttp then copies and sorts header sets on every request
    (measured ~4% of the gateway's CPU under load), so the default User-Agent goes out.
    """
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
    )


@dataclass(frozen=True, slots=True)
class Upstream:
    """One model server endpoint, with everything a call needs derived at config load."""

    name: str
    base_url: str
    infer_url: str
    timeout: aiohttp.ClientTimeout
    # Derived from the URLs: the model's ready endpoint, and host and port for spans
    # (OTel's server.address and server.port).
    ready_url: str = field(init=False)
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        default_port = 443 if parts.scheme == "https" else 80
        object.__setattr__(self, "ready_url", self.infer_url.removesuffix("/infer") + "/ready")
        object.__setattr__(self, "host", parts.hostname or "")
        object.__setattr__(self, "port", parts.port or default_port)

    @classmethod
    def from_settings(cls, settings: UpstreamSettings, default_model: str) -> Upstream:
        model = settings.model_name or default_model
        path = f"/v2/models/{model}"
        if settings.model_version:
            path += f"/versions/{settings.model_version}"
        return cls(
            name=settings.name,
            base_url=settings.url,
            infer_url=f"{settings.url}{path}/infer",
            timeout=aiohttp.ClientTimeout(total=settings.timeout_ms / 1000),
        )

    @classmethod
    def endpoints_from_settings(
        cls, settings: UpstreamSettings, default_model: str
    ) -> tuple[Upstream, ...]:
        """The upstream at ``url`` and one per replica URL, named ``<name>#2``, ``#3``, ..."""
        first = cls.from_settings(settings, default_model)
        path = first.infer_url.removeprefix(first.base_url)
        replicas = tuple(
            cls(f"{settings.name}#{i}", url, f"{url}{path}", first.timeout)
            for i, url in enumerate(settings.replicas, start=2)
        )
        return (first, *replicas)


_JSON_HEADERS = {"Content-Type": "application/json"}


async def post_infer(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    timeout_seconds: float | None = None,
) -> bytes:
    """POST an OIP infer ``body`` to ``upstream``; return the 200 answer's bytes.

    Raises ``UpstreamUnavailable`` (connection failed), ``UpstreamTimeout``,
    ``UpstreamBadResponse`` (5xx or unexpected status), or, when the model server refused
    the request itself (a 4xx but the ones in :data:`UPSTREAM_SIDE_4XX`), a client error
    with its message: ``PayloadTooLarge`` for 413, else ``InvalidInput``. A client error
    is the request's fault, so it never counts against the upstream's breaker.
    ``timeout_seconds`` replaces the upstream's configured one for this call.
    """
    client_timeout = (
        upstream.timeout
        if timeout_seconds is None
        else aiohttp.ClientTimeout(total=timeout_seconds)
    )
    send_headers = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
    try:
        async with session.post(
            upstream.infer_url, data=body, headers=send_headers, timeout=client_timeout
        ) as response:
            payload = await response.read()
            status = response.status
            binary_length = response.headers.get(HEADER_LENGTH)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            upstream.name, f"no answer within {client_timeout.total:g} s"
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailable(upstream.name, _describe(exc)) from exc
    if status == 200:
        if binary_length is not None:  # binary tensor data: read as the JSON it stands for
            return _binary_answer_as_json(upstream, payload, binary_length)
        return payload
    message = _error_message(payload)
    if 400 <= status < 500 and status not in UPSTREAM_SIDE_4XX:
        refused = f"model server {upstream.name!r} refused the request (HTTP {status}): {message}"
        raise PayloadTooLarge(refused) if status == 413 else InvalidInput(refused)
    raise UpstreamStatusError(upstream.name, status, message)


# 4xx statuses that say nothing about the client's request: the gateway's credentials
# (401, 403, 407), a model name the upstream does not serve (404: the config's mistake),
# the upstream's own time or load limits (408, 429). They count as the upstream failing.
UPSTREAM_SIDE_4XX = frozenset({401, 403, 404, 407, 408, 429})

_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "connection closed while sending",
}


def _describe(exc: BaseException) -> str:
    """What went wrong, for a client's eyes: no library names or internals.

    ``ClientConnectorError: Cannot connect to host 127.0.0.1:8001 ssl:default [Connect
    call failed ...]`` becomes ``unreachable: connection refused``.
    """
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "unreachable: host name not resolved"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "unreachable: TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"unreachable: {_os_text(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "closed the connection before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "answer cut short"
    if isinstance(exc, OSError):  # ClientOSError too
        return f"connection failed: {_os_text(exc)}"
    return "connection failed"


def _os_text(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = _ERRNO_TEXT.get(exc.errno) if exc.errno is not None else None
    if text is None and exc.strerror:
        text = exc.strerror.lower()
    return text or "connection failed"


def _binary_answer_as_json(upstream: Upstream, payload: bytes, length: str) -> bytes:
    """An answer with binary tensor data, as a JSON answer (the output checks read JSON)."""
    try:
        doc = decode_answer(payload, header_length(length))
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    except BinaryDataError as exc:
        raise UpstreamBadResponse(upstream.name, f"unreadable binary answer: {exc}") from exc


def _error_message(payload: bytes) -> str:
    """The ``error`` of an OIP error body, else a short excerpt of the body."""
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode("utf-8", "replace") or "<empty body>"
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
        return str(decoded["error"])
    return payload[:200].decode("utf-8", "replace")


async def probe_ready(
    session: aiohttp.ClientSession, upstream: Upstream, within_seconds: float
) -> bool:
    """True when ``upstream`` answers 200 on its model's ready endpoint
    (``/v2/models/{name}[/versions/{v}]/ready``, with the configured ``model_name`` and
    ``model_version``) within ``within_seconds``: a server that is up but does not serve
    the model is not ready for it."""
    try:
        async with session.get(
            upstream.ready_url,
            timeout=aiohttp.ClientTimeout(total=within_seconds),
        ) as response:
            await response.read()
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False
