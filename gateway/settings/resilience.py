"""Config sections of the degradation ladder (``models.<name>.breaker``, ``timeouts``, ...).

Kept apart from :mod:`gateway.settings.schema` so the ladder's knobs read as one unit; the
schema attaches them to :class:`~gateway.settings.schema.ModelSettings`. Every section has
defaults, so a model without them gets a breaker, deadlines and a bulkhead anyway.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlidingWindowSettings(_Section):
    """The calls a rate rule looks at: the last ``size`` calls, or the last ``size`` seconds."""

    kind: Literal["count", "time"] = "count"
    size: float = Field(default=50, gt=0, le=100_000)


class UpstreamBreakerSettings(_Section):
    """When an upstream's breaker opens; any enabled rule trips it (see docs/resilience.md)."""

    # Consecutive failures that open the breaker; 0 turns the rule off.
    consecutive_failures: int = Field(default=5, ge=0)
    window: SlidingWindowSettings = SlidingWindowSettings()
    # Rate rules judge the window only once it holds this many calls.
    minimum_calls: int = Field(default=20, ge=1)
    # Percent of failed calls in the window that opens the breaker; null turns it off.
    failure_rate_percent: float | None = Field(default=None, gt=0, le=100)
    # Percent of slow calls (slower than slow_call_ms, failed or not) that opens it.
    slow_call_rate_percent: float | None = Field(default=None, gt=0, le=100)
    slow_call_ms: float = Field(default=500, gt=0)
    # Open this long, then half-open: up to half_open_max_calls trial calls at once.
    reset_timeout_seconds: float = Field(default=5.0, gt=0)
    half_open_max_calls: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _some_rule(self) -> UpstreamBreakerSettings:
        if (
            self.consecutive_failures == 0
            and self.failure_rate_percent is None
            and self.slow_call_rate_percent is None
        ):
            raise ValueError(
                "at least one rule is needed: consecutive_failures > 0, "
                "failure_rate_percent or slow_call_rate_percent"
            )
        return self


class TimeoutSettings(_Section):
    """Deadlines; a client may ask for less with ``x-request-timeout-ms`` (or ``parameters``)."""

    # The whole request, every rung included; default: the per-try timeout plus the reserve
    # (one full upstream attempt, then the fallback).
    total_ms: int | None = Field(default=None, ge=1, le=600_000)
    # One upstream attempt; default: the upstream's own timeout_ms.
    per_try_ms: int | None = Field(default=None, ge=1, le=600_000)
    # Kept back from the upstream rung so the fallback always has time to answer.
    fallback_reserve_ms: int = Field(default=50, ge=0, le=60_000)

    @model_validator(mode="after")
    def _reserve_fits(self) -> TimeoutSettings:
        if self.total_ms is not None and self.fallback_reserve_ms >= self.total_ms:
            raise ValueError("fallback_reserve_ms must be smaller than total_ms")
        return self


class RetrySettings(_Section):
    """Retries of idempotent inference; never beyond the budget."""

    # Attempts in all, the first included; 1 turns retries off.
    max_attempts: int = Field(default=2, ge=1, le=10)
    # Answers retried besides connection errors (which always are).
    retry_on_statuses: tuple[int, ...] = (502, 503)
    backoff_base_ms: float = Field(default=5, ge=0)
    backoff_max_ms: float = Field(default=50, ge=0)
    # Retries may be at most this percent of requests (a token bucket, like Envoy's
    # retry_budget): each request adds budget_percent / 100 of a retry, each retry takes one.
    budget_percent: float = Field(default=20, ge=0, le=100)
    # Retries the bucket holds at most, and at start: the burst allowed with no traffic.
    min_retries: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _statuses(self) -> RetrySettings:
        bad = sorted(s for s in self.retry_on_statuses if not 500 <= s <= 599)
        if bad:
            raise ValueError(f"only 5xx statuses may be retried: {bad}")
        return self


class BulkheadSettings(_Section):
    """At most ``max_concurrent`` calls to the upstream; ``max_queue`` wait, briefly."""

    # Roomy enough to absorb the burst that follows an event-loop stall (a 200 ms pause at
    # 1,000 req/s leaves 200 requests arriving at once; 64 slots shed most of them in the
    # soak); low enough to bound what a hanging upstream can pile up.
    max_concurrent: int = Field(default=256, ge=1)
    max_queue: int = Field(default=256, ge=0)
    # Longest a queued request waits for a slot (never past its deadline).
    max_queue_wait_ms: int = Field(default=50, ge=0)
    # fallback: the next rung answers; reject: 503 with Retry-After.
    when_full: Literal["fallback", "reject"] = "fallback"


class FallbackSettings(_Section):
    """The in-process ONNX model on request-time inputs only."""

    # The fallback model directory (model-card.json + artifact), relative to the config.
    card: str
    # Must equal the artifact's sha256 (and the card's); a mismatch refuses the config.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Run in a worker thread (large models) instead of inline on the event loop.
    run_in_thread: bool = False


class DefaultResponseSettings(_Section):
    """The static answer of the last serving rung: this score, labelled by the card's threshold."""

    score: float = Field(ge=0.0, le=1.0)
