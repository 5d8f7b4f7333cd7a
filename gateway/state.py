"""What the running app holds: built at startup, owned by the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from gateway.dataplane import Predictor
from gateway.runtime import Runtime
from gateway.telemetry.metrics import GatewayMetrics


@dataclass(slots=True)
class AppState:
    """Long-lived resources; ``runtime`` is replaced whole when the config changes."""

    runtime: Runtime
    tracer: Tracer
    metrics: GatewayMetrics
    clock: Callable[[], float]
    predictor: Predictor | None = None  # set once the lifespan has opened the HTTP session

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise RuntimeError("the app is not started; run it under its lifespan")
        return self.predictor
