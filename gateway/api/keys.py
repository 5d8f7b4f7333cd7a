"""The API-key gate of the metadata endpoints, when ``auth.protect_metadata`` is set.

Prediction requests are admitted by the service itself, first thing (see
:mod:`gateway.service.auth`); this is the same check for the read-only endpoints that name
a model or describe the server. Health and ``/metrics`` are never gated: probes and
scrapers carry no key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.answers import error_response, service_of
from gateway.errors import GatewayError


def metadata_refusal(request: Request, model: str | None) -> Response | None:
    """The error answer when metadata is protected and the request's key may not read
    ``model`` (None: no model named) now; None when it may."""
    auth = service_of(request).runtime.auth
    if auth is None or not auth.protect_metadata:
        return None
    try:
        auth.admit(request.headers, model, None)
    except GatewayError as exc:
        return error_response(exc)
    return None
