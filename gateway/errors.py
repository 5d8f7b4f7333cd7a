"""The gateway's domain errors and the one table that maps them to HTTP.

Domain code raises these; only :func:`http_status` (used by the HTTP edge) knows
about status codes, so nothing below the edge imports the web framework.

    GatewayError
    ├── RequestError                 the client's request is at fault (4xx)
    │   ├── InvalidInput             400: malformed body, a field breaking a rule
    │   ├── ModelNotFound            404: unknown model or version
    │   ├── PayloadTooLarge          413: body over the configured limit (inflated, too)
    │   ├── UnsupportedEncoding      415: a Content-Encoding the gateway does not decode
    │   └── AccessDenied             a predict API key check failed (docs/auth.md)
    │       ├── Unauthenticated      401: no valid API key
    │       ├── Forbidden            403: the key may not call this model
    │       └── RateLimited          429: the key is over its rate limit
    └── ServiceError                 the gateway could not serve (5xx)
        ├── UpstreamError            a model server failed
        │   ├── UpstreamUnavailable  503: connection refused/reset, server gone
        │   ├── UpstreamTimeout      504: no answer within the deadline
        │   └── UpstreamBadResponse  502: 5xx, non-JSON, or an answer breaking the contract
        │       └── UpstreamStatusError  502: an error status, kept for the retry policy
        ├── FeatureStoreError        the feature store failed (the ladder usually absorbs it)
        │   ├── FeatureStoreUnavailable  503: connection refused/reset, store gone
        │   ├── FeatureStoreTimeout      504: no answer within the store's timeout
        │   └── FeatureStoreBadResponse  502: an error status or an unreadable answer
        ├── CircuitOpen              503: a breaker is open; no call was made
        ├── BulkheadFull             503: an upstream's concurrency limit and queue are full
        ├── LadderExhausted          503: no rung of the degradation ladder could answer
        ├── FeaturesUnavailable      503: a feature has no live, cached or default value
        ├── FallbackFailed           503: the in-process fallback model could not answer
        └── NotReady                 503: the gateway has nothing that can serve
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway turns into an HTTP answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestError(GatewayError):
    """The request is at fault; retrying it unchanged will fail again."""


class InvalidInput(RequestError):
    """The body is malformed or a field breaks a rule; the message names both."""


class ModelNotFound(RequestError):
    """No model (or version) of that name is configured."""


class PayloadTooLarge(RequestError):
    """The body is larger than the configured limit."""


class UnsupportedEncoding(RequestError):
    """The body's ``Content-Encoding`` is not one the gateway inflates (gzip, deflate)."""


class AccessDenied(RequestError):
    """A predict API key check refused the request; ``key`` names the key (None: none
    was valid). Never carries the key itself."""

    def __init__(self, message: str, key: str | None) -> None:
        super().__init__(message)
        self.key = key


class Unauthenticated(AccessDenied):
    """No valid API key was presented; ``challenge`` is the ``WWW-Authenticate`` value."""

    challenge = 'Bearer realm="gateway"'

    def __init__(self, message: str) -> None:
        super().__init__(message, None)


class Forbidden(AccessDenied):
    """The key is valid but may not call the model."""


class RateLimited(AccessDenied):
    """The key's token bucket is empty."""

    def __init__(self, message: str, key: str, retry_after_seconds: int) -> None:
        super().__init__(message, key)
        # Whole seconds until a token is back, at least 1 (the Retry-After header).
        self.retry_after_seconds = retry_after_seconds


class ServiceError(GatewayError):
    """The gateway could not produce an answer."""


class NotReady(ServiceError):
    """Nothing can serve the model right now."""


class UpstreamError(ServiceError):
    """A model server failed; ``upstream`` names it."""

    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(f"upstream {upstream!r}: {message}")
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    """The upstream refused or dropped the connection."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the deadline."""


class UpstreamBadResponse(UpstreamError):
    """The upstream answered with a 5xx, or with something that is not a valid answer."""


class UpstreamStatusError(UpstreamBadResponse):
    """The upstream answered an error status (5xx or unexpected); ``status`` keeps it."""

    def __init__(self, upstream: str, status: int, message: str) -> None:
        super().__init__(upstream, f"HTTP {status}: {message}")
        self.status = status


class FeatureStoreError(ServiceError):
    """The feature store failed; ``store`` names it (its URL)."""

    def __init__(self, store: str, message: str) -> None:
        super().__init__(f"feature store {store!r}: {message}")
        self.store = store


class FeatureStoreUnavailable(FeatureStoreError):
    """The feature store refused or dropped the connection."""


class FeatureStoreTimeout(FeatureStoreError):
    """The feature store did not answer within its timeout."""


class FeatureStoreBadResponse(FeatureStoreError):
    """The feature store answered with an error status (its message kept) or garbage."""


class CircuitOpen(ServiceError):
    """A circuit breaker is open (or its half-open trials are taken); nothing was called."""

    def __init__(self, breaker: str, retry_in_seconds: float) -> None:
        super().__init__(f"circuit {breaker!r} is open; next trial in {retry_in_seconds:.1f} s")
        self.breaker = breaker
        self.retry_in_seconds = retry_in_seconds


class BulkheadFull(ServiceError):
    """An upstream's concurrency limit is reached and its short queue is full (or timed out)."""

    def __init__(self, upstream: str, why: str, max_concurrent: int, max_queue: int) -> None:
        super().__init__(
            f"upstream {upstream!r}: bulkhead {why} "
            f"({max_concurrent} calls in flight, {max_queue} queued at most)"
        )
        self.upstream = upstream
        # Seconds a client should wait before trying again (the Retry-After header).
        self.retry_after_seconds = 1


class LadderExhausted(ServiceError):
    """Every rung of the degradation ladder failed; ``reasons`` says why, rung by rung."""

    def __init__(self, model: str, reasons: list[tuple[str, str]]) -> None:
        listed = "; ".join(f"{rung}: {why}" for rung, why in reasons)
        super().__init__(f"model {model!r} cannot be served: {listed}")
        self.reasons = reasons


class FeaturesUnavailable(ServiceError):
    """Some feature has no live, fresh cached or allowed default value for an instance."""


class FallbackFailed(ServiceError):
    """The in-process fallback model could not answer: an input it needs is missing or
    unusable, or its runtime failed (its errors are translated at that boundary)."""


# Resolved through the class MRO, most specific first, so a new subclass inherits its
# parent's entry without touching this table. The label names the outcome in metrics.
_TABLE: dict[type[GatewayError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_input"),
    ModelNotFound: (404, "not_found"),
    PayloadTooLarge: (413, "too_large"),
    UnsupportedEncoding: (415, "unsupported_encoding"),
    Unauthenticated: (401, "unauthenticated"),
    Forbidden: (403, "forbidden"),
    RateLimited: (429, "rate_limited"),
    RequestError: (400, "bad_request"),
    NotReady: (503, "not_ready"),
    UpstreamUnavailable: (503, "upstream_unavailable"),
    UpstreamTimeout: (504, "upstream_timeout"),
    UpstreamBadResponse: (502, "upstream_bad_response"),
    FeatureStoreUnavailable: (503, "feature_store_unavailable"),
    FeatureStoreTimeout: (504, "feature_store_timeout"),
    FeatureStoreBadResponse: (502, "feature_store_bad_response"),
    CircuitOpen: (503, "circuit_open"),
    BulkheadFull: (503, "bulkhead_full"),
    LadderExhausted: (503, "ladder_exhausted"),
    FeaturesUnavailable: (503, "features_unavailable"),
    FallbackFailed: (503, "fallback_failed"),
    ServiceError: (503, "unavailable"),
    GatewayError: (500, "error"),
}


def _entry(error: GatewayError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        entry = _TABLE.get(cls)
        if entry is not None:
            return entry
    return 500, "error"


def http_status(error: GatewayError) -> int:
    """The HTTP status for ``error``: its own class's entry or its nearest ancestor's."""
    return _entry(error)[0]


def outcome(error: GatewayError) -> str:
    """A short, bounded label for ``error`` in metrics and spans (``invalid_input``...)."""
    return _entry(error)[1]
