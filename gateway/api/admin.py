"""The admin API, behind a bearer token: ``GET /admin/status``, ``POST /admin/reload``.

Status shows why each model is (or is not) degraded, its routing and its shadows'
paired comparison, its request counters, the feature store's breaker and cache, the
config's reload state and the recent events (breaker transitions, reloads, canary weight
changes; oldest first, bounded), and which worker answered (``worker``: pid, slot, how
many; see docs/fleet.md). The operator page (``/admin/ui``, :mod:`gateway.api.ui`)
reads it with the same token.

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
from gateway.service.status import service_status
from gateway.settings.fleet import Fleet
from gateway.settings.reload import ConfigReloader
from gateway.telemetry.events import EventLog

log = logging.getLogger("gateway.admin")
TOKEN_VARIABLE = "GATEWAY_ADMIN_TOKEN"
Handler = Callable[[Request], Awaitable[Response]]


def _authorized(request: Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def _reloader(request: Request) -> ConfigReloader:
    reloader: ConfigReloader = request.app.state.reloader
    return reloader


def routes(token: str | None, fleet: Fleet | None = None) -> list[Route]:
    """The admin routes; ``fleet`` says which worker answers (``gateway serve --workers``)."""
    fleet = fleet or Fleet()
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
        service = service_of(request)
        events: EventLog = request.app.state.events
        return json_response(
            {
                "worker": fleet.status(),
                "config": {
                    "path": str(service.runtime.config.source),
                    "reload": _reloader(request).status.as_dict(),
                },
                **service_status(service),
                "events": events.as_list(),
            }
        )

    async def reload(request: Request) -> Response:
        """Load the config file now; 200 when applied, 422 with every problem when refused.

        In a fleet only this worker answers: once it has applied the file it asks the
        supervisor to send SIGHUP to every worker (itself included, which loads the file
        again), and says so; each worker's own state is in its ``/admin/status``. A refused
        file is not passed on: every worker would refuse it the same way.
        """
        reloader = _reloader(request)
        applied = await reloader.reload("admin")
        answer: dict[str, object] = {"applied": applied, "reload": reloader.status.as_dict()}
        if fleet.workers > 1:
            asked = applied and fleet.ask_every_worker_to_reload()
            answer["fleet"] = {
                "worker": fleet.status(),
                "every_worker_asked_to_reload": asked,
                "note": (
                    f"this worker applied the file; the supervisor sends SIGHUP to all "
                    f"{fleet.workers} workers, each reloads the file in place: see each "
                    "worker's /admin/status"
                    if asked
                    else "only this worker loaded the file; the others keep what they run"
                ),
            }
        return json_response(answer, 200 if applied else 422)

    return [
        Route("/admin/status", guarded(status), methods=["GET"]),
        Route("/admin/reload", guarded(reload), methods=["POST"]),
    ]
