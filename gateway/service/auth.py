"""Predict API keys: who is calling, may they call this model, are they within their rate.

A :class:`KeyTable` is built from the config's ``auth:`` section (see
:mod:`gateway.settings.auth`) with every runtime, and asked once per protected request,
before its body is read: :meth:`KeyTable.admit` either returns the caller's key name or
raises :class:`~gateway.errors.Unauthenticated` (401), :class:`~gateway.errors.Forbidden`
(403) or :class:`~gateway.errors.RateLimited` (429, with whole seconds to wait), in that
order, so a request without a valid key never reaches a model check, a bucket, the body,
the feature store or an upstream.

The key is taken from ``Authorization: Bearer <key>``, else from ``x-api-key: <key>``.
Its SHA-256 indexes the table, and the stored digest is still compared with
:func:`hmac.compare_digest`. Only hashes are kept; metrics and spans carry the key's name.

Across a reload a key keeps its token bucket while its name, hash, rate and burst are
unchanged (so a reload is no way to refill a bucket); a changed key starts full.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry.trace import Span
from prometheus_client import Counter

from gateway.errors import Forbidden, RateLimited, Unauthenticated
from gateway.resilience.token_bucket import TokenBucket
from gateway.settings.auth import ApiKeySettings, ResolvedAuth
from gateway.telemetry.auth_metrics import NO_KEY, AuthMetrics

UNAUTHENTICATED_MESSAGE = (
    "a valid API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
)
KeySpec = tuple[str, str, float | None, int | None]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key of the table, its bucket and its metric children bound."""

    name: str
    digest: bytes
    models: frozenset[str] | None  # None: every model
    bucket: TokenBucket | None  # None: not rate limited
    spec: KeySpec  # what the bucket was built from; equal spec, same bucket
    allowed: Counter
    forbidden: Counter
    rate_limited: Counter
    limit_message: str


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>``, else ``x-api-key``."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if token and scheme.lower() == "bearer":
            return token
    api_key = headers.get("x-api-key")
    if api_key is not None:
        api_key = api_key.strip()
        if api_key:
            return api_key
    return None


class KeyTable:
    """The running config's API keys; see the module docstring."""

    def __init__(
        self, keys: tuple[ApiKey, ...], protect_metadata: bool, unauthenticated: Counter
    ) -> None:
        self.keys = keys
        self.protect_metadata = protect_metadata
        self._by_digest = {key.digest: key for key in keys}
        self._unauthenticated = unauthenticated

    @classmethod
    def build(
        cls,
        auth: ResolvedAuth,
        previous: KeyTable | None,
        clock: Callable[[], float],
        metrics: AuthMetrics,
    ) -> KeyTable:
        """The table for ``auth``; buckets of unchanged keys are taken from ``previous``."""
        old = {key.name: key for key in previous.keys} if previous is not None else {}
        keys = tuple(
            _compile(settings, old.get(settings.name), clock, metrics) for settings in auth.keys
        )
        (unauthenticated,) = metrics.bind(NO_KEY, ("unauthenticated",)).values()
        return cls(keys, auth.protect_metadata, unauthenticated)

    def admit(self, headers: Mapping[str, str], model: str | None, span: Span | None) -> str:
        """The name of the caller's key when it may call ``model`` now (None: a request
        that names no model); else raise the refusal. Takes a token when allowed."""
        key = self._lookup(presented_key(headers))
        if key is None:
            self._unauthenticated.inc()
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
        # One attribute (~2 us on a sampled span): the decision is the span's outcome.
        if span is not None and span.is_recording():
            span.set_attribute("gateway.auth.key_name", key.name)
        if model is not None and key.models is not None and model not in key.models:
            key.forbidden.inc()
            raise Forbidden(
                f"API key {key.name!r} may not call model {model!r}; "
                f"it may call {sorted(key.models)}",
                key.name,
            )
        if key.bucket is not None:
            wait = key.bucket.take()
            if wait:
                key.rate_limited.inc()
                raise RateLimited(key.limit_message, key.name, max(1, math.ceil(wait)))
        key.allowed.inc()
        return key.name

    def _lookup(self, given: str | None) -> ApiKey | None:
        if given is None:
            return None
        try:
            # Header values are latin-1 as they came off the wire: these are the key's bytes.
            digest = hashlib.sha256(given.encode("latin-1")).digest()
        except UnicodeEncodeError:
            return None
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            return None
        return key


def _compile(
    settings: ApiKeySettings, old: ApiKey | None, clock: Callable[[], float], metrics: AuthMetrics
) -> ApiKey:
    rate, size = settings.rate_per_second, settings.bucket_size
    spec: KeySpec = (settings.name, settings.sha256, rate, size)
    bucket, limit_message = None, ""
    if rate is not None and size is not None:
        bucket = old.bucket if old is not None and old.spec == spec else None
        bucket = bucket or TokenBucket(rate, size, clock)
        limit_message = (
            f"API key {settings.name!r} is over its rate limit "
            f"({rate:g} requests/s, burst {size}); retry after the Retry-After seconds"
        )
    counters = metrics.bind(settings.name, ("allowed", "forbidden", "rate_limited"))
    return ApiKey(
        name=settings.name,
        digest=bytes.fromhex(settings.sha256),
        models=frozenset(settings.models) if settings.models is not None else None,
        bucket=bucket,
        spec=spec,
        allowed=counters["allowed"],
        forbidden=counters["forbidden"],
        rate_limited=counters["rate_limited"],
        limit_message=limit_message,
    )
