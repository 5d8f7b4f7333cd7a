"""Prometheus family of predict API keys: ``gateway_auth_decisions_total{key, decision}``.

Registered on the app's registry beside :class:`~gateway.telemetry.metrics.GatewayMetrics`.
``key`` is a key's configured *name* (never the key, never its hash), or ``<none>`` when
no valid key was presented; ``decision`` is one of :data:`DECISIONS`. Both are bounded by
the config. Each key's children are bound once, when its entry in the key table is built.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter

Decision = Literal["allowed", "unauthenticated", "forbidden", "rate_limited"]
DECISIONS: tuple[Decision, ...] = ("allowed", "unauthenticated", "forbidden", "rate_limited")
NO_KEY = "<none>"


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "gateway_auth_decisions",
            "Predict API key checks, by key name (<none>: no valid key) and decision "
            "(allowed, unauthenticated, forbidden, rate_limited).",
            ["key", "decision"],
            registry=registry,
        )

    def bind(self, key: str, decisions: tuple[Decision, ...]) -> dict[Decision, Counter]:
        """The children of ``key`` for ``decisions``, to keep and ``inc()`` per request."""
        return {decision: self.decisions.labels(key, decision) for decision in decisions}
