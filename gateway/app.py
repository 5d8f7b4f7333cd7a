"""``create_app(config, seams)``: the ASGI app, its routes and the lifespan owning resources.

This is where the layers are put together. ``create_app`` derives what the config alone
gives (tracer provider, metric families, the first :class:`Runtime`); the lifespan opens
the HTTP sessions and builds the :class:`PredictionService` whole around them, with the
feature store's enricher, the shadow dispatcher and the config reloader, and closes all
of it on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import aiohttp
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.api import admin, metrics, oip, openapi, ui, v1
from gateway.api.answers import INTERNAL_ERROR, error_response
from gateway.api.dispatch import GatewayApp
from gateway.features import snapshot
from gateway.features.cache import LastKnownGood
from gateway.features.enrichment import Enricher
from gateway.features.feast_client import FeastClient
from gateway.resilience.breaker import CircuitBreaker
from gateway.resilience.retry_budget import RetryBudget
from gateway.resilience.trip_policy import TripPolicy
from gateway.resilience.upstream_breaker import UpstreamBreaker
from gateway.rollout import prometheus
from gateway.rollout.analyst import Analyst
from gateway.routing.shadow import ShadowDispatcher
from gateway.service.ladder import Ladder
from gateway.service.pipeline import PredictionService
from gateway.service.quality import QualityCollector, refresh_forever
from gateway.service.runtime import Runtime, build_runtime
from gateway.service.traffic_metrics import TrafficCollector
from gateway.settings.fleet import Fleet
from gateway.settings.loader import LoadedConfig
from gateway.settings.reload import ConfigReloader
from gateway.settings.schema import FeatureStoreSettings
from gateway.telemetry.auth_metrics import AuthMetrics
from gateway.telemetry.events import EventLog
from gateway.telemetry.feature_metrics import FeatureMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import build_tracer_provider
from gateway.upstream.client import SessionFactory, default_session, post_infer, probe_ready

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
    return error_response(message, exc.status_code, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(INTERNAL_ERROR, 500)


def build_enricher(
    store: FeatureStoreSettings,
    runtime: Runtime,
    session: aiohttp.ClientSession,
    metrics: FeatureMetrics,
    tracer: Tracer,
    seams: Seams,
    events: EventLog | None = None,
) -> Enricher:
    """The feature store client, its breaker and the last-known-good cache, for one app."""
    # The cache keeps values as long as the largest max-age budget could use them.
    horizon = max((m.features.max_age for m in runtime.models.values() if m.features), default=1.0)  # fmt: skip

    def on_change(breaker: CircuitBreaker, old: str, new: str) -> None:
        log.warning("circuit %r: %s -> %s", breaker.name, old, new)
        metrics.breaker_moved(new)
        if events is not None:
            events.record("breaker", None, f"{breaker.name}: {old} -> {new}")

    rules = store.breaker
    # A failure rate over a short time window, not a streak: a blip of the store fails a
    # burst of lookups in a row without being an outage (docs/features.md).
    policy = TripPolicy(
        consecutive=rules.fail_max,
        failure_rate=rules.failure_rate_percent / 100,
        window_kind="time",
        window_size=rules.window_seconds,
        minimum_calls=rules.minimum_calls,
        clock=seams.breaker_clock,
    )
    breaker = UpstreamBreaker(
        "feature_store",
        policy,
        reset_timeout=rules.reset_timeout_seconds,
        max_reset_timeout=rules.max_reset_timeout_seconds,
        half_open_max_calls=rules.half_open_max_calls,
        clock=seams.breaker_clock,
        listeners=[on_change],
    )
    metrics.breaker_state.set(0)
    client = FeastClient(
        session,
        store.url,
        store.timeout_ms / 1000,
        retry_dropped=store.retry_dropped_connections,
        hedge_after_seconds=None if store.hedge_after_ms is None else store.hedge_after_ms / 1000,
        hedge_budget=RetryBudget(store.hedge_budget_percent, store.hedge_budget_min),
    )
    return Enricher(
        client=client,
        breaker=breaker,
        cache=LastKnownGood(store.cache.max_entries, horizon, seams.wall_clock),
        metrics=metrics,
        tracer=tracer,
        wall_clock=seams.wall_clock,
        timer=seams.clock,
        coalesce=store.coalesce,
        probe_interval_seconds=_seconds(rules.probe_interval_ms),
    )


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000


@dataclass
class _Snapshots:
    """The cache's snapshot file: loaded at start, written on a timer and at shutdown."""

    path: Path
    enricher: Enricher
    task: asyncio.Task[None]
    clock: Callable[[], float]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await snapshot.save(self.path, self.enricher.cache, self.clock())


def _start_snapshots(
    store: FeatureStoreSettings | None, source: Path, enricher: Enricher | None, seams: Seams
) -> _Snapshots | None:
    rules = store.cache.snapshot if store is not None else None
    if rules is None or enricher is None:
        return None
    path = (source.parent / rules.path).resolve()
    cache = enricher.cache
    loaded = snapshot.load(path, cache, seams.wall_clock(), cache.ttl_seconds)
    if loaded.written_at is not None:
        log.info("feature cache: %d values from %s (written %.0f s ago; %d skipped)",
                 loaded.entries, path, seams.wall_clock() - loaded.written_at, loaded.skipped)  # fmt: skip
    task = asyncio.create_task(
        snapshot.keep_saving(path, cache, seams.wall_clock, rules.interval_seconds)
    )
    return _Snapshots(path, enricher, task, seams.wall_clock)


def _record_canary_moves(events: EventLog, previous: Runtime, runtime: Runtime) -> None:
    """A canary weight changed by a reload (a rollout step, promotion or rollback) is an event."""
    for name, model in runtime.models.items():
        before = previous.models.get(name)
        if before is None:
            continue
        # The router's split is 0 without a canary.
        old, new = before.router.split.weight, model.router.split.weight
        if old != new:
            canary = model.router.canary or before.router.canary
            label = canary.name if canary is not None else "canary"
            events.record("canary", name, f"{label}: weight {old:g}% -> {new:g}%")


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


def create_app(
    config: LoadedConfig,
    seams: Seams | None = None,
    middleware: Sequence[Middleware] = (),
    fleet: Fleet | None = None,
) -> GatewayApp:
    """Build the gateway for ``config``; resources open and close with the lifespan.

    ``middleware`` wraps every route, the prediction endpoints included. ``fleet`` is this
    worker's place among ``gateway serve --workers N`` (default: a lone process).
    """
    fleet = fleet or Fleet()
    seams = seams or Seams()
    settings = config.settings
    provider = build_tracer_provider(settings.telemetry, seams.span_exporter)
    tracer = provider.get_tracer("gateway", __version__)
    gateway_metrics = seams.metrics_factory()
    registry = gateway_metrics.registry
    events = EventLog(clock=seams.wall_clock)
    ladder_metrics = LadderMetrics(registry, events)
    feature_metrics = FeatureMetrics(registry) if settings.feature_store else None
    auth_metrics = AuthMetrics(registry)

    def rebuild(new: LoadedConfig, previous: Runtime | None) -> Runtime:
        runtime = build_runtime(
            new, seams.breaker_clock, ladder_metrics, previous, auth_metrics=auth_metrics
        )
        if previous is not None:  # built whole: the service swaps it in
            _record_canary_moves(events, previous, runtime)
        return runtime

    runtime = rebuild(config, None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        session = seams.session_factory()
        transport = partial(post_infer, session)
        # A pool of its own, so a slow store never holds connections the upstreams need.
        store_session = seams.session_factory() if settings.feature_store else None
        enricher = None
        if settings.feature_store is not None and store_session is not None:
            assert feature_metrics is not None
            store = settings.feature_store
            enricher = build_enricher(
                store, runtime, store_session, feature_metrics, tracer, seams, events
            )
        snapshots = _start_snapshots(settings.feature_store, config.source, enricher, seams)
        queue = settings.server.shadow_queue
        shadows = ShadowDispatcher(
            transport, queue_size=queue.max_queue, concurrency=queue.concurrency, tracer=tracer
        )
        service = PredictionService(
            runtime,
            build_runtime=rebuild,
            ladder=Ladder(transport, tracer, gateway_metrics, ladder_metrics, seams.clock),
            enricher=enricher,
            shadows=shadows,
            probe=partial(probe_ready, session),
            metrics=gateway_metrics,
            tracer=tracer,
            clock=seams.clock,
        )
        reload_settings = settings.server.reload

        def on_reload(applied: bool) -> None:
            gateway_metrics.count_reload(applied)
            status = reloader.status
            detail = f"{'applied' if applied else 'refused'} ({status.last_trigger})"
            if not applied and status.last_error:
                detail += f": {status.last_error[0]}"
            events.record("reload", None, detail)

        reloader = ConfigReloader(
            config.source,
            service.apply,
            interval=reload_settings.interval_ms / 1000,
            also_watch=lambda: service.runtime.config.watched_files,
            on_result=on_reload,
        )
        traffic = TrafficCollector(lambda: service.runtime)
        registry.register(traffic)
        quality = QualityCollector(lambda: service.runtime)
        registry.register(quality)
        refresher = asyncio.create_task(refresh_forever(lambda: service.runtime, seams.clock))
        # The canary rollout analysis: one writer of the routing file, worker 0 of a fleet.
        analysis = None
        if fleet.index in (None, 0):

            async def reload_everywhere() -> None:
                """A step written by the analysis serves at once in every worker, not at
                their next poll of the file (as ``POST /admin/reload`` does)."""
                if await reloader.reload("analysis") and fleet.workers > 1:
                    fleet.ask_every_worker_to_reload()

            analyst = Analyst(
                lambda: service.runtime,
                reload_everywhere,
                partial(prometheus.evaluate, session),
                seams.breaker_clock,
            )
            analysis = asyncio.create_task(analyst.run_forever(), name="rollout-analysis")
        app.state.gateway = service
        app.state.reloader = reloader
        app.state.events = events
        shadows.start()
        hangup = _on_sighup(reloader)
        try:
            if reload_settings.watch:
                async with reloader.running():
                    yield
            else:
                yield
        finally:
            _forget_sighup(hangup)
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            if analysis is not None:
                analysis.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await analysis
            if snapshots is not None:
                await snapshots.stop()
            await shadows.stop()
            if enricher is not None and enricher.probe is not None:
                await enricher.probe.close()
            registry.unregister(traffic)
            registry.unregister(quality)
            del app.state.gateway, app.state.reloader, app.state.events
            await session.close()
            if store_session is not None:
                await store_session.close()
            provider.shutdown()  # flushes batched spans

    return GatewayApp(
        hot_routes=[*oip.PREDICTION_ROUTES, *v1.ROUTES],
        routes=[
            *oip.ROUTES,
            *v1.ROUTES,
            *metrics.routes(fleet),
            *admin.routes(os.environ.get(admin.TOKEN_VARIABLE), fleet),
            *ui.ROUTES,
            *openapi.ROUTES,
        ],
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
