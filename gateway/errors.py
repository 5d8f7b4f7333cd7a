"""The gateway's domain errors and the one table that maps them to HTTP.

Domain code raises these; only :func:`http_status` (used by the HTTP edge) knows
about status codes, so nothing below the edge imports the web framework.

    GatewayError
    ├── RequestError                 the client's request is at fault (4xx)
    │   ├── InvalidInput             400: malformed body, a field breaking a rule
    │   ├── ModelNotFound            404: unknown model or version
    │   └── PayloadTooLarge          413: body over the configured limit
    └── ServiceError                 the gateway could not serve (5xx)
        ├── UpstreamError            a model server failed
        │   ├── UpstreamUnavailable  503: connection refused/reset, server gone
        │   ├── UpstreamTimeout      504: no answer within the deadline
        │   └── UpstreamBadResponse  502: 5xx, non-JSON, or an answer breaking the contract
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


# Resolved through the class MRO, most specific first, so a new subclass inherits its
# parent's entry without touching this table. The label names the outcome in metrics.
_TABLE: dict[type[GatewayError], tuple[int, str]] = {
    InvalidInput: (400, "invalid_input"),
    ModelNotFound: (404, "not_found"),
    PayloadTooLarge: (413, "too_large"),
    RequestError: (400, "bad_request"),
    NotReady: (503, "not_ready"),
    UpstreamUnavailable: (503, "upstream_unavailable"),
    UpstreamTimeout: (504, "upstream_timeout"),
    UpstreamBadResponse: (502, "upstream_bad_response"),
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
