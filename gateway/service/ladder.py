"""The degradation ladder: what serves a validated request, rung by rung.

:meth:`Ladder.serve` tries, in order:

1. the routed upstream (primary or canary), guarded by its breakers, bulkhead, retry
   budget and the request's deadline (:mod:`gateway.resilience`); skipped when the
   request cannot use it (its store features are unavailable);
2. the in-process fallback ONNX model on the request-time inputs;
3. the static default response;
4. :class:`~gateway.errors.LadderExhausted` (503) naming why each rung failed.

A client error (4xx) is never absorbed: it is the request's fault, so no rung would do
better. A model with neither fallback nor default keeps the upstream's own error (502,
503, 504), as there is no ladder to exhaust.

Upstream calls go through an :data:`InferTransport` (``post_infer`` over the app's aiohttp
session in production), so tests drive every rung with a fake transport and a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from gateway.contracts.outputs import parse_answer
from gateway.contracts.problems import OutputViolation
from gateway.errors import (
    BulkheadFull,
    CircuitOpen,
    GatewayError,
    LadderExhausted,
    RequestError,
    UpstreamTimeout,
    outcome,
)
from gateway.fallback import default as default_rung
from gateway.fallback import onnx_model
from gateway.provenance import FeatureSource, Provenance, RoutedVariant
from gateway.resilience.deadline import Deadline
from gateway.resilience.guards import GuardedUpstream
from gateway.resilience.upstream_breaker import UpstreamBreaker
from gateway.service.runtime import ModelRuntime
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import trace_headers
from gateway.upstream.client import Upstream

log = logging.getLogger("gateway.ladder")

Columns = Mapping[str, Sequence[Any]]
# (upstream, OIP body, headers, timeout seconds) -> the 200 answer's bytes, or a GatewayError.
InferTransport = Callable[[Upstream, bytes, Mapping[str, str], float], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class LadderRequest:
    """One validated prediction, in the forms each rung needs.

    ``body`` is the OIP request for the upstream, or ``None`` when the upstream rung cannot
    be used (``skip_reason`` says why). ``columns()`` gives the request's inputs by name
    for the fallback model. ``feature_source`` is where the
    upstream's features came from (its provenance).
    """

    body: bytes | None
    batch: int
    columns: Callable[[], Columns]
    requested: tuple[str, ...] | None = None
    skip_reason: str | None = None
    feature_source: FeatureSource = "none"


@dataclass(frozen=True, slots=True)
class Ladder:
    """Serves validated requests; owns the client spans and the upstream and rung metrics."""

    transport: InferTransport
    tracer: Tracer
    metrics: GatewayMetrics
    ladder_metrics: LadderMetrics
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # retry backoff

    async def serve(
        self,
        model: ModelRuntime,
        request: LadderRequest,
        target: GuardedUpstream,
        variant: RoutedVariant,
        deadline: Deadline,
        parent: Span,
    ) -> tuple[dict[str, Any], Provenance]:
        """Answer ``request`` from the highest rung that can; see the module docstring.

        ``target`` and ``variant`` are the router's choice for the first rung; the
        ``deadline`` counts from the request's arrival and keeps its reserve for the
        in-process rungs.
        """
        has_lower_rung = model.fallback is not None or model.default is not None
        reasons: list[tuple[str, str]] = []
        cohorts = model.cohorts
        cohort = cohorts.of(variant) if cohorts is not None else None
        if cohort is not None:  # a canary under analysis: its and the primary's figures
            cohort.requests += 1
        if request.body is None:
            reasons.append((target.name, request.skip_reason or "not usable"))
        else:
            try:
                answer, served_by = await self._upstream_rung(
                    model, target, request, request.body, deadline, parent
                )
            except RequestError:
                raise
            except GatewayError as exc:
                self._rung_failed(model, target, exc, parent)
                if cohort is not None:
                    cohort.errors += 1
                    if isinstance(exc, OutputViolation):
                        cohort.violations += 1
                if not has_lower_rung or (
                    isinstance(exc, BulkheadFull) and target.reject_when_full
                ):
                    raise
                reasons.append((target.name, exc.message))
            else:
                self.ladder_metrics.count_served(model.name, variant)
                provenance = Provenance(variant, served_by, degraded=False, feature_source="none")
                return answer, provenance.with_features(request.feature_source)
        if cohort is not None:
            cohort.lower_rung += 1
        fallback = model.fallback
        if fallback is not None:
            try:
                answer = await self._fallback_rung(model, fallback, request, parent)
            except GatewayError as exc:
                log.warning("model %r: the fallback model failed: %s", model.name, exc.message)
                self.ladder_metrics.count_rung_failure(model.name, "fallback", outcome(exc))
                reasons.append((onnx_model.SERVED_BY, exc.message))
            else:
                self.ladder_metrics.count_served(model.name, "fallback")
                return answer, Provenance(
                    "fallback", onnx_model.SERVED_BY, degraded=True, feature_source="none"
                )
        else:
            reasons.append((onnx_model.SERVED_BY, "not configured"))
        if model.default is not None:
            self.ladder_metrics.count_served(model.name, "default")
            if parent.is_recording():
                parent.add_event("gateway.rung", {"rung": "default"})
            return model.default.answer(request.batch, request.requested), Provenance(
                "default", default_rung.SERVED_BY, degraded=True, feature_source="none"
            )
        reasons.append((default_rung.SERVED_BY, "not configured"))
        self.ladder_metrics.count_served(model.name, "none")
        raise LadderExhausted(model.name, reasons)

    async def _upstream_rung(
        self,
        model: ModelRuntime,
        target: GuardedUpstream,
        request: LadderRequest,
        body: bytes,
        deadline: Deadline,
        parent: Span,
    ) -> tuple[dict[str, Any], str]:
        """The guarded upstream: an endpoint whose breaker allows the call, through the
        bulkhead, retried (on the next replica when there are several) within the retry
        budget and the deadline. Returns the answer and the endpoint's name."""
        endpoint = target.pick()
        if endpoint is None:  # every breaker open: no slot taken, nothing awaited
            raise CircuitOpen(target.breaker.name, target.retry_in())
        budget = deadline.usable()
        if budget <= 0:
            raise UpstreamTimeout(target.name, "no time left for the upstream before the deadline")
        target.budget.deposit()
        if not target.bulkhead.try_acquire():
            await target.bulkhead.acquire(min(target.queue_wait_seconds, budget))
        try:
            attempt = 1
            while True:
                per_try = min(target.per_try_seconds, deadline.usable())
                if per_try <= 0:
                    raise UpstreamTimeout(target.name, "the deadline passed between attempts")
                breaker = endpoint.breaker
                before = breaker.state
                try:
                    with breaker.calling():
                        answer = await self.forward(
                            model, endpoint.upstream, body, request, per_try, attempt, parent
                        )
                    return answer, endpoint.upstream.name
                except GatewayError as exc:
                    if attempt >= target.max_attempts or not target.retryable(exc):
                        raise
                    following = target.pick(avoid=endpoint)
                    if following is None:  # every breaker is open now
                        raise
                    # A retry the deadline would stop is never sent, so it takes no token.
                    pause = target.backoff(attempt)
                    if pause >= deadline.usable():
                        raise
                    if not target.budget.try_withdraw():
                        self._count_retry(model, target, "budget_exhausted")
                        raise
                    self._count_retry(model, target, "sent")
                    await self.sleep(pause)
                    attempt += 1
                    endpoint = following
                finally:
                    self._note_breaker(breaker, before, parent)
        finally:
            target.bulkhead.release()

    async def forward(
        self,
        model: ModelRuntime,
        upstream: Upstream,
        body: bytes,
        request: LadderRequest,
        timeout_seconds: float,
        attempt: int,
        parent: Span,
    ) -> dict[str, Any]:
        """One attempt, unguarded: send ``body`` to ``upstream`` and check its answer.

        The answer is checked against the model's output contract for the request's rows
        and requested outputs; a violation is an upstream failure (``OutputViolation``),
        which trips the breaker and lets the ladder serve.
        """
        # A request whose span is not sampled records no child either (every standard
        # sampler decides alike for one trace): its own span context is propagated, and
        # the cost of starting a second unrecorded span is saved.
        span = (
            self.tracer.start_span(
                f"infer {upstream.name}", context=set_span_in_context(parent), kind=SpanKind.CLIENT
            )
            if parent.is_recording()
            else parent
        )
        if span.is_recording():
            span.set_attribute("server.address", upstream.host)
            span.set_attribute("server.port", upstream.port)
            span.set_attribute("gateway.upstream", upstream.name)
            if attempt > 1:
                span.set_attribute("gateway.attempt", attempt)
        result = "ok"
        started = self.clock()
        try:
            payload = await self.transport(
                upstream, body, trace_headers(span.get_span_context()), timeout_seconds
            )
            answer = parse_answer(upstream.name, payload)
            check = model.outputs
            constant = check.check(
                upstream.name,
                answer,
                request.batch,
                request.requested,
                hash(body) if check.constant else None,
            )
            if constant:  # flagged, not refused: count every answer served while constant
                self.metrics.count_output_violation(model.name, upstream.name, "constant_output")
        except GatewayError as exc:
            result = outcome(exc)
            if span.is_recording():
                span.set_status(Status(StatusCode.ERROR, exc.message))
            if isinstance(exc, OutputViolation):
                for rule in exc.rules:
                    self.metrics.count_output_violation(model.name, upstream.name, rule)
                if span.is_recording():
                    span.set_attribute("gateway.output_rules", exc.rules)
            raise
        finally:
            self.metrics.observe_upstream(model.name, upstream.name, result, self.clock() - started)
            if span is not parent:
                span.end()
        return answer

    async def _fallback_rung(
        self,
        model: ModelRuntime,
        fallback: onnx_model.FallbackModel,
        request: LadderRequest,
        parent: Span,
    ) -> dict[str, Any]:
        started = self.clock()
        columns = request.columns()
        if fallback.run_in_thread:
            answer = await asyncio.to_thread(
                fallback.predict, columns, request.batch, request.requested
            )
        else:
            answer = fallback.predict(columns, request.batch, request.requested)
        self.ladder_metrics.fallback_seconds.labels(model.name).observe(self.clock() - started)
        if parent.is_recording():
            parent.add_event("gateway.rung", {"rung": "fallback"})
        return answer

    def _note_breaker(self, breaker: UpstreamBreaker, before: str, span: Span) -> None:
        """A span event when the call just made moved the breaker."""
        after = breaker.state
        if after != before and span.is_recording():
            span.add_event(
                "gateway.breaker.state_change",
                {"breaker": breaker.name, "from": before, "to": after,
                 "reason": breaker.trip_reason or ""},
            )  # fmt: skip

    def _rung_failed(
        self, model: ModelRuntime, target: GuardedUpstream, exc: GatewayError, span: Span
    ) -> None:
        if not isinstance(exc, CircuitOpen):  # the breaker's own refusal is no new failure
            target.last_failure = exc.message
        self.ladder_metrics.count_rung_failure(model.name, target.name, outcome(exc))
        if isinstance(exc, BulkheadFull):
            self.ladder_metrics.bulkhead_rejections.labels(model.name, target.name).inc()
        if span.is_recording():
            span.add_event("gateway.rung_failed", {"rung": target.name, "reason": exc.message})

    def _count_retry(self, model: ModelRuntime, target: GuardedUpstream, result: str) -> None:
        self.ladder_metrics.retries.labels(model.name, target.name, result).inc()
