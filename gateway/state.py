"""What the running app holds: built at startup, owned by the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from gateway.dataplane import Predictor
from gateway.errors import NotReady
from gateway.features.enrichment import Enricher
from gateway.routing.shadow import ShadowDispatcher
from gateway.runtime import Runtime
from gateway.settings.reload import ConfigReloader
from gateway.telemetry.metrics import GatewayMetrics


@dataclass(slots=True)
class AppState:
    """Long-lived resources; ``runtime`` is replaced whole when the config changes."""

    runtime: Runtime
    tracer: Tracer
    metrics: GatewayMetrics
    clock: Callable[[], float]
    predictor: Predictor | None = None  # set once the lifespan has opened the HTTP session
    # Set by the lifespan when a feature_store is configured.
    enricher: Enricher | None = None
    # Sends sampled copies to shadow upstreams; set by the lifespan.
    shadows: ShadowDispatcher | None = None
    # Watches and reloads the config file; set by the lifespan.
    reloader: ConfigReloader | None = None

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise RuntimeError("the app is not started; run it under its lifespan")
        return self.predictor

    def require_enricher(self) -> Enricher:
        """The feature store's enricher; ``NotReady`` (503) when none was opened at startup."""
        if self.enricher is None:
            # The store session opens with the lifespan, for the config loaded at startup.
            raise NotReady("the feature store is not open; it opens when the gateway starts")
        return self.enricher
