"""``create_app(config, seams)``: the ASGI app, its routes and the lifespan owning resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
from opentelemetry.sdk.trace.export import SpanExporter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.api import admin, metrics, oip, openapi, v1
from gateway.api.common import json_response
from gateway.api.dispatch import GatewayApp
from gateway.dataplane import Predictor
from gateway.features.cache import LastKnownGood
from gateway.features.enrichment import Enricher
from gateway.features.feast_client import FeastClient
from gateway.reconfigure import apply_config
from gateway.resilience.breaker import CircuitBreaker
from gateway.resilience.guards import build_guards
from gateway.routing.shadow import ShadowDispatcher
from gateway.runtime import build_runtime
from gateway.settings.loader import LoadedConfig
from gateway.settings.reload import ConfigReloader
from gateway.state import AppState
from gateway.telemetry.feature_metrics import FeatureMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import build_tracer_provider
from gateway.telemetry.traffic_metrics import register_traffic_metrics
from gateway.upstream.client import SessionFactory, default_session, post_infer

log = logging.getLogger("gateway.app")


@dataclass(frozen=True)
class Seams:
    """The side effects a test may replace, each with its production default."""

    session_factory: SessionFactory = default_session
    span_exporter: SpanExporter | None = None
    clock: Callable[[], float] = time.perf_counter
    metrics_factory: Callable[[], GatewayMetrics] = field(default=GatewayMetrics)
    # Feature ages and the last-known-good cache run on the wall clock (event timestamps
    # are wall time); breakers on a monotonic one.
    wall_clock: Callable[[], float] = time.time
    breaker_clock: Callable[[], float] = time.monotonic


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = exc.detail
    return json_response({"error": message}, exc.status_code, dict(exc.headers or {}))


def build_enricher(
    config: LoadedConfig,
    session: aiohttp.ClientSession,
    state: AppState,
    metrics: FeatureMetrics,
    seams: Seams,
) -> Enricher:
    """The feature store client, its breaker and the last-known-good cache, for one app."""
    store = config.settings.feature_store
    assert store is not None

    def on_change(breaker: CircuitBreaker, old: str, new: str) -> None:
        log.warning("circuit %r: %s -> %s", breaker.name, old, new)
        metrics.breaker_moved(new)

    breaker = CircuitBreaker(
        "feature_store",
        fail_max=store.breaker.fail_max,
        reset_timeout=store.breaker.reset_timeout_seconds,
        half_open_max_calls=store.breaker.half_open_max_calls,
        clock=seams.breaker_clock,
        listeners=[on_change],
    )
    metrics.breaker_state.set(0)
    horizon = max(
        (m.features.max_age for m in state.runtime.models.values() if m.features), default=1.0
    )
    return Enricher(
        client=FeastClient(session, store.url, store.timeout_ms / 1000),
        breaker=breaker,
        cache=LastKnownGood(store.cache.max_entries, horizon, seams.wall_clock),
        metrics=metrics,
        tracer=state.tracer,
        wall_clock=seams.wall_clock,
        timer=state.clock,
    )


def _on_sighup(reloader: ConfigReloader) -> bool:
    """Reload on SIGHUP; only possible in the main thread (not when a test runs the app)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reloader.reload("signal")))
    except (ValueError, RuntimeError, NotImplementedError):
        return False
    return True


def _forget_sighup(installed: bool) -> None:
    if installed:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


def create_app(config: LoadedConfig, seams: Seams | None = None) -> GatewayApp:
    """Build the gateway for ``config``; resources open and close with the lifespan."""
    seams = seams or Seams()
    provider = build_tracer_provider(config.settings.telemetry, seams.span_exporter)
    state = AppState(
        runtime=build_runtime(config),
        tracer=provider.get_tracer("gateway", __version__),
        metrics=seams.metrics_factory(),
        clock=seams.clock,
    )

    feature_metrics = (
        FeatureMetrics(state.metrics.registry) if config.settings.feature_store else None
    )

    # The ladder's mutable state (breakers, bulkheads, retry budgets) lives as long as the app.
    ladder_metrics = LadderMetrics(state.metrics.registry)
    guards = build_guards(config, seams.breaker_clock, ladder_metrics)

    def apply(new_config: LoadedConfig) -> None:
        apply_config(state, new_config, seams.breaker_clock, ladder_metrics)

    register_traffic_metrics(state)
    reload_settings = config.settings.server.reload
    reloader = ConfigReloader(
        config.source,
        apply,
        interval=reload_settings.interval_ms / 1000,
        on_result=state.metrics.count_reload,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        session = seams.session_factory()
        state.predictor = Predictor(
            session, state.tracer, state.metrics, state.clock, guards, ladder_metrics
        )
        # A pool of its own, so a slow store never holds connections the upstreams need.
        store_session = seams.session_factory() if feature_metrics else None
        if store_session is not None and feature_metrics is not None:
            state.enricher = build_enricher(config, store_session, state, feature_metrics, seams)
        queue = config.settings.server.shadow_queue
        state.shadows = ShadowDispatcher(
            lambda upstream, body: post_infer(session, upstream, body),
            queue_size=queue.max_queue,
            concurrency=queue.concurrency,
        )
        state.shadows.start()
        state.reloader = reloader
        hangup = _on_sighup(reloader)
        try:
            if reload_settings.watch:
                async with reloader.running():
                    yield
            else:
                yield
        finally:
            _forget_sighup(hangup)
            await state.shadows.stop()
            state.predictor = None
            state.enricher = None
            state.shadows = None
            await session.close()
            if store_session is not None:
                await store_session.close()
            provider.shutdown()  # flushes batched spans

    app = GatewayApp(
        hot_routes=[*oip.PREDICTION_ROUTES, *v1.ROUTES],
        routes=[
            *oip.ROUTES,
            *v1.ROUTES,
            *metrics.ROUTES,
            *admin.routes(os.environ.get(admin.TOKEN_VARIABLE)),
            *openapi.ROUTES,
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.gateway = state
    return app
