"""Prometheus families of the feature store, its breaker and the last-known-good cache.

Registered on the app's registry (:class:`gateway.telemetry.metrics.GatewayMetrics`);
label children are bound on first use and reused from dicts, like the request metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.telemetry.metrics import LATENCY_BUCKETS

# Feature ages range from seconds (a live pipeline) to the largest budget (a day by default).
AGE_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86_400.0, 7 * 86_400.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class FeatureMetrics:
    """Store calls, breaker state, cache hits and misses, stale values, ages served."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.store_requests = Counter(
            "gateway_feature_store_requests",
            "Calls to the feature store, by outcome (ok, feature_store_timeout, ...).",
            ["outcome"],
            registry=registry,
        )
        self.store_seconds = Histogram(
            "gateway_feature_store_duration_seconds",
            "Duration of feature store calls, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.breaker_state = Gauge(
            "gateway_feature_store_breaker_state",
            "The feature store's circuit breaker: 0 closed, 1 half-open, 2 open.",
            registry=registry,
            # One breaker per worker: the worst live one, labels as with one process
            # (see LadderMetrics.breaker_state).
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = Counter(
            "gateway_feature_store_breaker_transitions",
            "The feature store breaker's state changes, by the state entered.",
            ["state"],
            registry=registry,
        )
        self.skipped_calls = Counter(
            "gateway_feature_store_skipped",
            "Lookups answered without calling the store because its breaker was open.",
            registry=registry,
        )
        self.recovery_probes = Counter(
            "gateway_feature_store_probes",
            "Health checks of the feature store while its breaker was open, by result (healthy, unhealthy).",
            ["result"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "gateway_feature_cache_lookups",
            "Last-known-good cache lookups for values the store did not supply fresh, by result (hit, miss, expired).",
            ["model", "result"],
            registry=registry,
        )
        self.stale_values = Counter(
            "gateway_feature_stale_values",
            "Values the store returned older than their max-age budget.",
            ["model"],
            registry=registry,
        )
        self.read_through = Counter(
            "gateway_feature_read_through",
            "Entities whose values the store gave within refresh_after_seconds, served from memory as live without a store call.",
            ["model"],
            registry=registry,
        )
        self.values_served = Counter(
            "gateway_feature_values_served",
            "Feature values used in predictions, by model and source (live, cache, defaults).",
            ["model", "source"],
            registry=registry,
        )
        self.age_served = Histogram(
            "gateway_feature_age_seconds",
            "Age of live and cached feature values used in predictions.",
            ["model"],
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self._store: dict[str, tuple[Counter, Histogram]] = {}

    def observe_store(self, outcome: str, seconds: float) -> None:
        bound = self._store.get(outcome)
        if bound is None:
            bound = self._store[outcome] = (
                self.store_requests.labels(outcome),
                self.store_seconds.labels(outcome),
            )
        bound[0].inc()
        bound[1].observe(seconds)

    def breaker_moved(self, state: str) -> None:
        self.breaker_state.set(BREAKER_STATES[state])
        self.breaker_transitions.labels(state).inc()
