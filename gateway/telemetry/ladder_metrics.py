"""Prometheus families of the degradation ladder: rungs served, breakers, retries, bulkheads.

Registered on the app's registry beside :class:`GatewayMetrics`; label children are bound
on first use and kept, like the request counters. Every label is bounded by the config
(model and upstream names) or a fixed set (rungs, states, outcomes).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.telemetry.events import EventLog
from gateway.telemetry.metrics import LATENCY_BUCKETS

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class LadderMetrics:
    """The ladder's families, and ``events``: the log its breakers' transitions go to."""

    def __init__(self, registry: CollectorRegistry, events: EventLog | None = None) -> None:
        self.events = events if events is not None else EventLog()
        self.served = Counter(
            "gateway_served_by",
            "Predictions answered, by model and the rung that served them "
            "(primary, fallback, default).",
            ["model", "rung"],
            registry=registry,
        )
        self.rung_failures = Counter(
            "gateway_rung_failures",
            "Rungs that could not answer a request, by model, rung and outcome.",
            ["model", "rung", "outcome"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "gateway_upstream_breaker_state",
            "Upstream circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["model", "upstream"],
            registry=registry,
            # Each worker has its own breaker. With several workers the scrape shows the
            # worst state among live ones: the labels stay as with one process (no pid),
            # so `> 0` alerts keep working, and a dead worker's state is dropped.
            multiprocess_mode="livemax",
        )
        self.breaker_transitions = Counter(
            "gateway_upstream_breaker_transitions",
            "Upstream circuit breaker state changes, by the state entered.",
            ["model", "upstream", "state"],
            registry=registry,
        )
        self.retries = Counter(
            "gateway_upstream_retries",
            "Retries of upstream calls, by result (sent, budget_exhausted).",
            ["model", "upstream", "result"],
            registry=registry,
        )
        self.bulkhead_rejections = Counter(
            "gateway_bulkhead_rejections",
            "Requests turned away by an upstream's full bulkhead.",
            ["model", "upstream"],
            registry=registry,
        )
        self.fallback_seconds = Histogram(
            "gateway_fallback_duration_seconds",
            "Time the in-process fallback model took per request.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._served: dict[tuple[str, str], Counter] = {}
        self._failures: dict[tuple[str, str, str], Counter] = {}

    def count_served(self, model: str, rung: str) -> None:
        key = (model, rung)
        child = self._served.get(key)
        if child is None:
            child = self._served[key] = self.served.labels(*key)
        child.inc()

    def count_rung_failure(self, model: str, rung: str, outcome: str) -> None:
        key = (model, rung, outcome)
        child = self._failures.get(key)
        if child is None:
            child = self._failures[key] = self.rung_failures.labels(*key)
        child.inc()

    def breaker_moved(self, model: str, upstream: str, state: str) -> None:
        self.breaker_state.labels(model, upstream).set(BREAKER_STATES[state])
        self.breaker_transitions.labels(model, upstream, state).inc()
