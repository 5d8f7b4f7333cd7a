"""``GatewayApp``: Starlette, with the prediction routes matched ahead of its router.

Predictions are the hot path. Starlette sends every request through its exception
middleware, a scan of the whole route table and per-message ``send`` wrappers; under load
that measured about a tenth of the gateway's CPU per prediction. Here the few hot routes
are matched first, with Starlette's own ``Route.matches`` (so paths, parameters and
methods mean exactly what the route table says), and their endpoints are called
directly; everything else, and a hot path with the wrong method (405), goes on to
Starlette's exception middleware and router as usual.

The app's middleware list wraps both: the stack is Starlette's, with the hot-route
matcher in the router's place::

    ServerErrorMiddleware -> your middleware... -> HotRoutes -> ExceptionMiddleware -> Router
                                                      `-> a prediction endpoint

so a middleware added to the app (auth, CORS, request ids) sees every request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.answers import INTERNAL_ERROR, error_response

log = logging.getLogger("gateway.api")


class HotRoutes:
    """Calls the endpoint of a matching hot route directly; else hands on to ``app``.

    Hot endpoints must answer every error themselves (the prediction endpoints do, as
    ``{"error": ...}``); anything that still escapes is logged and answered with a 500.
    """

    def __init__(self, routes: Sequence[Route], app: ASGIApp) -> None:
        self.routes = tuple(routes)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    request = Request(scope, receive, send)
                    try:
                        response = await route.endpoint(request)
                    except Exception:
                        log.exception("unexpected error answering %s %s", scope["method"], scope["path"])  # fmt: skip
                        response = error_response(INTERNAL_ERROR, 500)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class GatewayApp(Starlette):
    """A Starlette app whose ``hot_routes`` skip the exception middleware and the router,
    not the app's middleware."""

    def __init__(self, *, hot_routes: Sequence[Route], **kwargs: Any) -> None:
        self.hot_routes = tuple(hot_routes)
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        # Starlette's own stack (Starlette.build_middleware_stack), with HotRoutes in the
        # router's place and the exception middleware moved behind it.
        debug = self.debug
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        middleware = [Middleware(ServerErrorMiddleware, handler=error_handler, debug=debug)]
        if self.max_body_size is not None:
            middleware.append(Middleware(RequestBodyLimitMiddleware, max_body_size=self.max_body_size))  # fmt: skip
        middleware += self.user_middleware
        app: ASGIApp = HotRoutes(
            self.hot_routes, ExceptionMiddleware(self.router, handlers=handlers, debug=debug)
        )
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
        return app
