"""The admin API, behind a bearer token: ``GET /admin/status``, ``POST /admin/reload``.

Status shows why each model is (or is not) degraded, its routing and its shadows'
paired comparison, and the config's reload state.

The token comes from ``GATEWAY_ADMIN_TOKEN`` when the app is built and is compared in
constant time. Without it the admin API is off: every ``/admin`` request gets 403 and the
gateway logs a warning once at startup.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import error_response, json_response, service_of
from gateway.service.status import runtime_status
from gateway.settings.reload import ConfigReloader

log = logging.getLogger("gateway.admin")
TOKEN_VARIABLE = "GATEWAY_ADMIN_TOKEN"
Handler = Callable[[Request], Awaitable[Response]]


def _authorized(request: Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def _reloader(request: Request) -> ConfigReloader:
    reloader: ConfigReloader = request.app.state.reloader
    return reloader


def routes(token: str | None) -> list[Route]:
    if not token:
        log.warning("%s is not set: the admin API is disabled", TOKEN_VARIABLE)
    secret = token.encode() if token else b""

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not secret:
                return error_response(
                    f"the admin API is disabled; set {TOKEN_VARIABLE} to enable it", 403
                )
            if not _authorized(request, secret):
                return error_response(
                    "a valid bearer token is required",
                    401,
                    {"www-authenticate": 'Bearer realm="gateway-admin"'},
                )
            return await handler(request)

        return endpoint

    async def status(request: Request) -> Response:
        runtime = service_of(request).runtime
        return json_response(
            {
                "config": {
                    "path": str(runtime.config.source),
                    "reload": _reloader(request).status.as_dict(),
                },
                "models": runtime_status(runtime),
            }
        )

    async def reload(request: Request) -> Response:
        """Load the config file now; 200 when applied, 422 with every problem when refused."""
        reloader = _reloader(request)
        applied = await reloader.reload("admin")
        return json_response(
            {"applied": applied, "reload": reloader.status.as_dict()}, 200 if applied else 422
        )

    return [
        Route("/admin/status", guarded(status), methods=["GET"]),
        Route("/admin/reload", guarded(reload), methods=["POST"]),
    ]
