"""``GatewayApp``: Starlette, with the prediction routes dispatched ahead of its middleware.

Predictions are the hot path. Starlette sends every request through two exception
middlewares, a scan of the whole route table and per-message ``send`` wrappers; under
load that measured about a tenth of the gateway's CPU per prediction. The few hot routes
are matched here first, with Starlette's own ``Route.matches`` (so paths, parameters and
methods mean exactly what the route table says), and their endpoints are called
directly. Everything else, and a hot path with the wrong method (405), goes through
Starlette as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from gateway.api.common import json_response

log = logging.getLogger("gateway.api")


class GatewayApp(Starlette):
    """A Starlette app whose ``hot_routes`` skip the middleware stack and the router.

    Hot endpoints must answer every error themselves (the prediction endpoints do, as
    ``{"error": ...}``); anything that still escapes is logged and answered with a 500.
    """

    def __init__(self, *, hot_routes: Sequence[Route], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_routes = tuple(hot_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.hot_routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child_scope)
                    await _answer(route, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


async def _answer(route: Route, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await route.endpoint(Request(scope, receive, send))
    except Exception:
        log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
        response = json_response({"error": "internal error; see the gateway log"}, 500)
    await response(scope, receive, send)
