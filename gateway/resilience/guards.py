"""One upstream of a model with everything that guards calls to it.

A :class:`GuardedUpstream` is what routing hands the ladder: the upstream's endpoints (its
URL and any replicas), each with its own breaker, one bulkhead, one retry budget, and the
deadlines and retry rules from the model's settings. It is built at config load and
carries mutable state (breaker states, bulkhead slots, budget balance), so a reload keeps
it whenever :func:`guard_spec` of the new settings equals the one it was built from.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import (
    CircuitOpen,
    GatewayError,
    RequestError,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from gateway.resilience.breaker import BreakerState, CircuitBreaker
from gateway.resilience.bulkhead import Bulkhead
from gateway.resilience.retry_budget import RetryBudget
from gateway.resilience.trip_policy import TripPolicy
from gateway.resilience.upstream_breaker import UpstreamBreaker
from gateway.settings.schema import ModelSettings, UpstreamSettings
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.upstream.client import Upstream

log = logging.getLogger("gateway.resilience")


def is_upstream_failure(exc: BaseException) -> bool:
    """Connection errors, timeouts, 5xx and output violations; never the client's fault."""
    return isinstance(exc, GatewayError) and not isinstance(exc, RequestError | CircuitOpen)


def guard_spec(model: ModelSettings, upstream: UpstreamSettings) -> object:
    """Everything a guarded upstream is built from; equal specs mean it can be kept.

    A canary's weight and its rollout's analysis are routing, not the guard's business,
    so they are left out (a rollout step resets no breaker).
    """
    endpoint = upstream.model_dump_json(exclude={"weight", "analysis"})
    return (endpoint, model.breaker, model.timeouts, model.retries, model.bulkhead)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One URL of an upstream (the upstream itself or a replica) and its own breaker."""

    upstream: Upstream
    breaker: UpstreamBreaker


@dataclass(slots=True, eq=False)
class GuardedUpstream:
    """One upstream of ``model`` (its primary or canary): endpoints with their breakers,
    one bulkhead, one retry budget, its deadlines and retry rules."""

    model: str
    name: str
    spec: object  # what it was built from (guard_spec)
    endpoints: tuple[Endpoint, ...]
    bulkhead: Bulkhead
    budget: RetryBudget
    total_seconds: float
    per_try_seconds: float
    reserve_seconds: float
    queue_wait_seconds: float
    reject_when_full: bool
    max_attempts: int
    retry_statuses: frozenset[int]
    backoff_base: float
    backoff_max: float
    random: random.Random = field(default_factory=random.Random)
    last_failure: str | None = None
    _turn: int = 0

    @property
    def upstream(self) -> Upstream:
        """The first endpoint: the configured URL (health probes, status)."""
        return self.endpoints[0].upstream

    @property
    def breaker(self) -> UpstreamBreaker:
        """The first endpoint's breaker."""
        return self.endpoints[0].breaker

    def pick(self, avoid: Endpoint | None = None) -> Endpoint | None:
        """The next endpoint (round robin) whose breaker lets a call through, preferring one
        other than ``avoid`` (the endpoint that just failed); None when every breaker refuses.
        """
        count = len(self.endpoints)
        if avoid is None:  # a new request: take turns
            start = self._turn
            self._turn = (start + 1) % count
        else:  # a retry: the endpoint after the one that failed
            start = (self.endpoints.index(avoid) + 1) % count
        fallback_choice = None
        for offset in range(count):
            endpoint = self.endpoints[(start + offset) % count]
            if endpoint.breaker.allows_call():
                if endpoint is not avoid:
                    return endpoint
                fallback_choice = endpoint
        return fallback_choice

    def retry_in(self) -> float:
        """Seconds until some endpoint's breaker lets a trial through."""
        return min(e.breaker.retry_in() for e in self.endpoints)

    def retryable(self, exc: GatewayError) -> bool:
        """A connection failure, or an error status the settings list; never a timeout
        (the attempt already spent its time) nor the client's fault."""
        if isinstance(exc, UpstreamUnavailable):
            return True
        return isinstance(exc, UpstreamStatusError) and exc.status in self.retry_statuses

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(retry - 1))] seconds."""
        return self.random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (retry - 1)))

    def status(self) -> dict[str, object]:
        status: dict[str, object] = {
            "upstream": self.name,
            "breaker": _breaker_status(self.breaker),
            "bulkhead": {
                "active": self.bulkhead.active,
                "queued": self.bulkhead.queued,
                "max_concurrent": self.bulkhead.max_concurrent,
                "max_queue": self.bulkhead.max_queue,
                "rejected": self.bulkhead.rejected,
            },
            "retry_budget": {
                "balance": round(self.budget.balance, 3),
                "retries": self.budget.retries,
                "refused": self.budget.refused,
            },
            "last_failure": self.last_failure,
        }
        if len(self.endpoints) > 1:
            status["endpoints"] = [
                {"name": e.upstream.name, "url": e.upstream.base_url,
                 "breaker": _breaker_status(e.breaker)}
                for e in self.endpoints
            ]  # fmt: skip
        return status

    @classmethod
    def build(
        cls,
        model: str,
        settings: ModelSettings,
        upstream_settings: UpstreamSettings,
        clock: Callable[[], float],
        metrics: LadderMetrics,
    ) -> GuardedUpstream:
        """The guarded upstream ``upstream_settings`` (the primary or the canary) of ``model``."""
        rules = settings.breaker

        def on_change(breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
            reason = breaker.trip_reason if isinstance(breaker, UpstreamBreaker) else None
            because = f" ({reason})" if reason else ""
            log.warning("circuit %r: %s -> %s%s", breaker.name, old, new, because)
            endpoint_name = breaker.name.partition("/")[2]
            metrics.breaker_moved(model, endpoint_name, new)
            metrics.events.record("breaker", model, f"{endpoint_name}: {old} -> {new}{because}")

        def endpoint(upstream_at: Upstream) -> Endpoint:
            policy = TripPolicy(
                consecutive=rules.consecutive_failures,
                failure_rate=_share(rules.failure_rate_percent),
                slow_rate=_share(rules.slow_call_rate_percent),
                slow_call_seconds=rules.slow_call_ms / 1000,
                window_kind=rules.window.kind,
                window_size=rules.window.size,
                minimum_calls=rules.minimum_calls,
                clock=clock,
            )
            breaker = UpstreamBreaker(
                f"{model}/{upstream_at.name}",
                policy,
                reset_timeout=rules.reset_timeout_seconds,
                half_open_max_calls=rules.half_open_max_calls,
                clock=clock,
                listeners=[on_change],
                is_failure=is_upstream_failure,
            )
            metrics.breaker_state.labels(model, upstream_at.name).set(0)
            return Endpoint(upstream_at, breaker)

        endpoints = tuple(
            endpoint(u) for u in Upstream.endpoints_from_settings(upstream_settings, model)
        )
        timeouts, retries, bulkhead = settings.timeouts, settings.retries, settings.bulkhead
        per_try = (
            timeouts.per_try_ms if timeouts.per_try_ms is not None else upstream_settings.timeout_ms
        )
        total = timeouts.total_ms if timeouts.total_ms is not None else per_try + timeouts.fallback_reserve_ms  # fmt: skip
        return cls(
            model=model,
            name=upstream_settings.name,
            spec=guard_spec(settings, upstream_settings),
            endpoints=endpoints,
            bulkhead=Bulkhead(upstream_settings.name, bulkhead.max_concurrent, bulkhead.max_queue),
            budget=RetryBudget(retries.budget_percent, retries.min_retries),
            total_seconds=total / 1000,
            per_try_seconds=per_try / 1000,
            reserve_seconds=timeouts.fallback_reserve_ms / 1000,
            queue_wait_seconds=bulkhead.max_queue_wait_ms / 1000,
            reject_when_full=bulkhead.when_full == "reject",
            max_attempts=retries.max_attempts,
            retry_statuses=frozenset(retries.retry_on_statuses),
            backoff_base=retries.backoff_base_ms / 1000,
            backoff_max=retries.backoff_max_ms / 1000,
        )


def _share(percent: float | None) -> float | None:
    return None if percent is None else percent / 100


def _breaker_status(breaker: UpstreamBreaker) -> dict[str, object]:
    return {
        "state": breaker.state,
        "trip_reason": breaker.trip_reason,
        "retry_in_seconds": round(breaker.retry_in(), 3),
        "half_open_trials_in_flight": breaker.trials_in_flight,
    }
