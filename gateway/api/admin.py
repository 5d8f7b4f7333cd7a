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
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import json_response, state_of
from gateway.runtime import ModelRuntime

log = logging.getLogger("gateway.admin")
TOKEN_VARIABLE = "GATEWAY_ADMIN_TOKEN"
Handler = Callable[[Request], Awaitable[Response]]


def _authorized(request: Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


def model_status(
    model: ModelRuntime, guard_status: dict[str, Any] | None, canary: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The rungs of one model, which can serve now, and why it is degraded if it is."""
    why: list[str] = []
    rungs: list[str] = []
    if guard_status is not None:
        breaker = guard_status["breaker"]
        if breaker["state"] == "closed":
            rungs.append("primary")
        else:
            why.append(
                f"breaker {breaker['state']}: {breaker['trip_reason'] or 'no reason recorded'}"
            )
    else:
        rungs.append("primary")
    if model.fallback is not None:
        rungs.append("fallback")
    if model.default is not None:
        rungs.append("default")
    if canary is not None and canary["breaker"]["state"] != "closed":
        why.append(
            f"canary {canary['upstream']} breaker {canary['breaker']['state']}: "
            f"{canary['breaker']['trip_reason'] or 'no reason recorded'}"
        )
    return {
        "serving_rungs": rungs,
        "degraded": bool(why),
        "why": why,
        "primary": guard_status,
        "canary": canary,
        "fallback": (
            {"version": model.fallback.card.version, "run_in_thread": model.fallback.run_in_thread}
            if model.fallback
            else None
        ),
        "default": (
            {"score": model.default.score, "label": model.default.label} if model.default else None
        ),
    }


def routes(token: str | None) -> list[Route]:
    if not token:
        log.warning("%s is not set: the admin API is disabled", TOKEN_VARIABLE)
    secret = token.encode() if token else b""

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not secret:
                return json_response(
                    {"error": f"the admin API is disabled; set {TOKEN_VARIABLE} to enable it"},
                    403,
                )
            if not _authorized(request, secret):
                return json_response(
                    {"error": "a valid bearer token is required"},
                    401,
                    {"www-authenticate": 'Bearer realm="gateway-admin"'},
                )
            return await handler(request)

        return endpoint

    async def status(request: Request) -> Response:
        state = state_of(request)
        guards = state.predictor.guards if state.predictor is not None else {}
        models = {}
        for name, model in state.runtime.models.items():
            settings = state.runtime.config.settings.models[name]
            primary = guards.get((name, settings.primary.name))
            canary = guards.get((name, settings.canary.name)) if settings.canary else None
            models[name] = model_status(
                model,
                primary.status() if primary else None,
                canary.status() if canary else None,
            ) | {"routing": _routing(model), "shadows": [t.as_dict() for t in model.shadows]}
        reload = state.reloader.status.as_dict() if state.reloader else None
        return json_response(
            {
                "config": {"path": str(state.runtime.config.source), "reload": reload},
                "models": models,
            }
        )

    async def reload(request: Request) -> Response:
        """Load the config file now; 200 when applied, 422 with every problem when refused."""
        reloader = state_of(request).reloader
        if reloader is None:
            return json_response({"error": "the gateway is not started"}, 503)
        applied = await reloader.reload("admin")
        return json_response(
            {"applied": applied, "reload": reloader.status.as_dict()}, 200 if applied else 422
        )

    return [
        Route("/admin/status", guarded(status), methods=["GET"]),
        Route("/admin/reload", guarded(reload), methods=["POST"]),
    ]


def _routing(model: ModelRuntime) -> dict[str, Any]:
    router = model.router
    return {
        "primary": router.primary.name,
        "canary": router.canary.name if router.canary else None,
        "canary_weight_percent": router.split.weight if router.canary else 0.0,
        "sticky_key": router.sticky_key,
        "sticky_header": router.sticky_header,
        "variant_override": router.allow_override,
    }
