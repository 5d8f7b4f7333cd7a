"""``create_app(config, seams)``: the ASGI app, its routes and the lifespan owning resources."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.api import metrics, oip, v1
from gateway.api.common import json_response
from gateway.dataplane import Predictor
from gateway.runtime import build_runtime
from gateway.settings.loader import LoadedConfig
from gateway.state import AppState
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import build_tracer_provider
from gateway.upstream.client import SessionFactory, default_session


@dataclass(frozen=True)
class Seams:
    """The side effects a test may replace, each with its production default."""

    session_factory: SessionFactory = default_session
    span_exporter: SpanExporter | None = None
    clock: Callable[[], float] = time.perf_counter
    metrics_factory: Callable[[], GatewayMetrics] = field(default=GatewayMetrics)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = exc.detail
    return json_response({"error": message}, exc.status_code, dict(exc.headers or {}))


def create_app(config: LoadedConfig, seams: Seams | None = None) -> Starlette:
    """Build the gateway for ``config``; resources open and close with the lifespan."""
    seams = seams or Seams()
    provider = build_tracer_provider(config.settings.telemetry, seams.span_exporter)
    state = AppState(
        runtime=build_runtime(config),
        tracer=provider.get_tracer("gateway", __version__),
        metrics=seams.metrics_factory(),
        clock=seams.clock,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        session = seams.session_factory()
        state.predictor = Predictor(session, state.tracer, state.metrics, state.clock)
        try:
            yield
        finally:
            state.predictor = None
            await session.close()
            provider.shutdown()  # flushes batched spans

    app = Starlette(
        routes=[*oip.ROUTES, *v1.ROUTES, *metrics.ROUTES],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.gateway = state
    return app
