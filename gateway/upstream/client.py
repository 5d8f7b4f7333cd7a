"""The OIP v2 client for model servers: one pooled aiohttp session, errors translated here.

aiohttp is used on the hot path because httpx's async pool measured 6-20x slower as a
proxy's upstream client on this machine (see docs/architecture.md). Every foreign
exception is translated once, at this boundary, into :mod:`gateway.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson

from gateway.errors import InvalidInput, UpstreamStatusError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings.schema import UpstreamSettings

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
    ``UpstreamBadResponse`` (5xx or unexpected status) or ``InvalidInput`` when the
    model server refused the request as invalid (400/422), with its message.
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
    except TimeoutError as exc:
        raise UpstreamTimeout(
            upstream.name, f"no answer within {client_timeout.total:g} s"
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamUnavailable(upstream.name, _describe(exc)) from exc
    if status == 200:
        return payload
    message = _error_message(payload)
    if status in (400, 422):
        raise InvalidInput(f"model server {upstream.name!r} refused the request: {message}")
    raise UpstreamStatusError(upstream.name, status, message)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
    """True when ``upstream`` answers 200 on ``/v2/health/ready`` within ``within_seconds``."""
    try:
        async with session.get(
            f"{upstream.base_url}/v2/health/ready",
            timeout=aiohttp.ClientTimeout(total=within_seconds),
        ) as response:
            await response.read()
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False
