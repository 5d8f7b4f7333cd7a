"""The decision layer: what serves a validated request. No HTTP shaping here.

:meth:`Predictor.serve` walks the degradation ladder (PRODUCT.md), rung by rung:

1. the primary upstream (:meth:`Predictor.forward`), guarded by its breaker, bulkhead,
   retry budget and deadlines (:mod:`gateway.resilience`);
2. the in-process fallback ONNX model on the request-time inputs;
3. the static default response;
4. :class:`~gateway.errors.LadderExhausted` (503) naming why each rung failed.

A client error (4xx) is never absorbed: it is the request's fault, so no rung would do
better. A model with neither fallback nor default keeps the upstream's own error (502,
503, 504), as there is no ladder to exhaust.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
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
from gateway.provenance import FeatureSource, Provenance, Variant
from gateway.resilience.deadline import Deadline
from gateway.resilience.guards import GuardKey, UpstreamGuard
from gateway.resilience.upstream_breaker import UpstreamBreaker
from gateway.runtime import ModelRuntime
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import traceparent
from gateway.upstream.client import Upstream, post_infer

log = logging.getLogger("gateway.dataplane")

Columns = Mapping[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class LadderRequest:
    """One validated prediction, in the forms each rung needs.

    ``body`` is the OIP request for the upstream (None when the upstream rung cannot be
    used, e.g. its features are unavailable; ``skip_reason`` says why). ``columns``
    gives the request-time inputs by name for the fallback model, computed only if asked.
    ``feature_source`` is where the upstream's features came from (its provenance).
    """

    body: bytes | None
    batch: int
    columns: Callable[[], Columns]
    requested: tuple[str, ...] | None = None
    client_timeout_ms: float | None = None
    # When the request arrived (the predictor's clock): steps before the ladder, such as
    # the feature lookup, have spent part of the budget already.
    started: float | None = None
    skip_reason: str | None = None
    feature_source: FeatureSource = "none"


@dataclass(frozen=True, slots=True)
class Predictor:
    """Calls upstreams for validated requests; owns the client span and upstream metrics."""

    session: aiohttp.ClientSession
    tracer: Tracer
    metrics: GatewayMetrics
    clock: Callable[[], float]
    # One guard (breaker, bulkhead, retry budget, deadlines) per (model, upstream name).
    guards: Mapping[GuardKey, UpstreamGuard] = field(default_factory=dict)
    ladder_metrics: LadderMetrics | None = None

    async def forward(
        self,
        model: ModelRuntime,
        body: bytes,
        parent: Span,
        batch: int | None = None,
        requested: tuple[str, ...] | None = None,
        *,
        timeout_seconds: float | None = None,
        attempt: int = 1,
        upstream: Upstream | None = None,
    ) -> tuple[dict[str, Any], Provenance]:
        """Send the OIP ``body`` to ``upstream`` (default: the model's primary); return its answer.

        This is one attempt, unguarded; :meth:`serve` wraps it in the ladder. With
        ``timeout_seconds`` the attempt gets that long instead of the upstream's timeout.

        With ``batch`` the answer is checked against the model's output contract for that
        many rows (and the ``requested`` outputs, default all); a violation is an upstream
        failure (``OutputViolation``), which trips the breaker and lets the ladder serve.

        The body bytes go out unchanged when the client's request is forwarded as is,
        saving a re-serialization on the hot path.
        """
        upstream = upstream or model.primary
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
            span.set_attribute("server.address", upstream.base_url)
            span.set_attribute("gateway.upstream", upstream.name)
            if attempt > 1:
                span.set_attribute("gateway.attempt", attempt)
        result = "ok"
        started = self.clock()
        try:
            payload = await post_infer(
                self.session,
                upstream,
                body,
                {"traceparent": traceparent(span.get_span_context())},
                timeout_seconds,
            )
            answer = parse_answer(upstream.name, payload)
            if batch is not None:
                check = model.outputs
                constant = check.check(
                    upstream.name, answer, batch, requested, hash(body) if check.constant else None
                )
                if constant:  # flagged, not refused: count every answer served while constant
                    self.metrics.count_output_violation(
                        model.name, upstream.name, "constant_output"
                    )
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
        return answer, Provenance("primary", upstream.name, degraded=False, feature_source="none")

    def step_budget(
        self, model: ModelRuntime, upstream: Upstream, client_timeout_ms: float | None
    ) -> float | None:
        """Seconds a request's steps before the fallback's reserve may take, from its arrival.

        ``None`` when the upstream has no guard (no deadline is configured).
        """
        guard = self.guards.get((model.name, upstream.name))
        if guard is None:
            return None
        seconds = guard.total_seconds
        if client_timeout_ms is not None:
            seconds = min(seconds, client_timeout_ms / 1000)
        return seconds - guard.reserve_seconds

    async def serve(
        self,
        model: ModelRuntime,
        request: LadderRequest,
        parent: Span,
        upstream: Upstream | None = None,
        variant: Variant = "primary",
    ) -> tuple[dict[str, Any], Provenance]:
        """Answer ``request`` from the highest rung that can; see the module docstring.

        ``upstream`` and ``variant`` name the first rung (default: the primary); the
        router picks them (a canary, say), and that upstream's own guard applies.
        """
        upstream = upstream or model.primary
        guard = self.guards.get((model.name, upstream.name))
        if guard is None:  # an app built without guards: the upstream alone
            if request.body is None:
                raise LadderExhausted(
                    model.name, [(upstream.name, request.skip_reason or "not usable")]
                )
            answer, _ = await self.forward(
                model, request.body, parent, request.batch, request.requested, upstream=upstream
            )
            provenance = Provenance(variant, upstream.name, degraded=False, feature_source="none")
            return answer, provenance.with_features(request.feature_source)
        has_lower_rung = model.fallback is not None or model.default is not None
        reasons: list[tuple[str, str]] = []
        seconds = guard.total_seconds
        if request.client_timeout_ms is not None:
            seconds = min(seconds, request.client_timeout_ms / 1000)
        deadline = (
            Deadline(request.started + seconds, self.clock)
            if request.started is not None
            else Deadline.after(seconds, self.clock)
        )
        if request.body is None:
            reasons.append((upstream.name, request.skip_reason or "not usable"))
        else:
            try:
                answer, served_by = await self._upstream_rung(
                    model, guard, request, request.body, deadline, parent, has_lower_rung
                )
            except RequestError:
                raise
            except GatewayError as exc:
                self._rung_failed(model, guard, exc, parent)
                if not has_lower_rung or (isinstance(exc, BulkheadFull) and guard.reject_when_full):
                    raise
                reasons.append((upstream.name, exc.message))
            else:
                self._count_served(model, variant)
                provenance = Provenance(variant, served_by, degraded=False, feature_source="none")
                return answer, provenance.with_features(request.feature_source)
        fallback = model.fallback
        if fallback is not None:
            try:
                answer = await self._fallback_rung(model, fallback, request, parent)
            except Exception as exc:  # onnxruntime's errors share no base class
                message = exc.message if isinstance(exc, GatewayError) else str(exc)
                log.warning("model %r: the fallback model failed: %s", model.name, message)
                if self.ladder_metrics is not None:
                    self.ladder_metrics.count_rung_failure(model.name, "fallback", "error")
                reasons.append((onnx_model.SERVED_BY, message))
            else:
                self._count_served(model, "fallback")
                return answer, Provenance(
                    "fallback", onnx_model.SERVED_BY, degraded=True, feature_source="none"
                )
        else:
            reasons.append((onnx_model.SERVED_BY, "not configured"))
        if model.default is not None:
            self._count_served(model, "default")
            if parent.is_recording():
                parent.add_event("gateway.rung", {"rung": "default"})
            return model.default.answer(request.batch, request.requested), Provenance(
                "default", default_rung.SERVED_BY, degraded=True, feature_source="none"
            )
        reasons.append((default_rung.SERVED_BY, "not configured"))
        self._count_served(model, "none")
        raise LadderExhausted(model.name, reasons)

    async def _upstream_rung(
        self,
        model: ModelRuntime,
        guard: UpstreamGuard,
        request: LadderRequest,
        body: bytes,
        deadline: Deadline,
        parent: Span,
        has_lower_rung: bool,
    ) -> tuple[dict[str, Any], str]:
        """The guarded upstream: an endpoint whose breaker allows the call, through the
        bulkhead, retried (on the next replica when there are several) within the retry
        budget and the deadline. Returns the answer and the endpoint's name."""
        endpoint = guard.pick()
        if endpoint is None:  # every breaker open: no slot taken, nothing awaited
            breaker = guard.breaker
            raise CircuitOpen(breaker.name, min(e.breaker.retry_in() for e in guard.endpoints))
        reserve = guard.reserve_seconds if has_lower_rung else 0.0
        budget = deadline.remaining() - reserve
        if budget <= 0:
            raise UpstreamTimeout(
                guard.upstream, "no time left for the upstream before the deadline"
            )
        guard.budget.deposit()
        if not guard.bulkhead.try_acquire():
            await guard.bulkhead.acquire(min(guard.queue_wait_seconds, budget))
        try:
            attempt = 1
            while True:
                per_try = min(guard.per_try_seconds, deadline.remaining() - reserve)
                if per_try <= 0:
                    raise UpstreamTimeout(guard.upstream, "the deadline passed between attempts")
                breaker = endpoint.breaker
                before = breaker.state
                try:
                    with breaker.calling():
                        answer, _ = await self.forward(
                            model,
                            body,
                            parent,
                            request.batch,
                            request.requested,
                            timeout_seconds=per_try,
                            attempt=attempt,
                            upstream=endpoint.upstream,
                        )
                    return answer, endpoint.upstream.name
                except GatewayError as exc:
                    if attempt >= guard.max_attempts or not guard.retryable(exc):
                        raise
                    following = guard.pick(avoid=endpoint)
                    if following is None:  # every breaker is open now
                        raise
                    if not guard.budget.try_withdraw():
                        self._count_retry(model, guard, "budget_exhausted")
                        raise
                    pause = guard.backoff(attempt)
                    if pause >= deadline.remaining() - reserve:
                        raise
                    self._count_retry(model, guard, "sent")
                    await asyncio.sleep(pause)
                    attempt += 1
                    endpoint = following
                finally:
                    self._note_breaker(breaker, before, parent)
        finally:
            guard.bulkhead.release()

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
        if self.ladder_metrics is not None:
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
        self, model: ModelRuntime, guard: UpstreamGuard, exc: GatewayError, span: Span
    ) -> None:
        if not isinstance(exc, CircuitOpen):  # the breaker's own refusal is no new failure
            guard.last_failure = exc.message
        if self.ladder_metrics is not None:
            self.ladder_metrics.count_rung_failure(model.name, guard.upstream, outcome(exc))
            if isinstance(exc, BulkheadFull):
                self.ladder_metrics.bulkhead_rejections.labels(model.name, guard.upstream).inc()
        if span.is_recording():
            span.add_event("gateway.rung_failed", {"rung": guard.upstream, "reason": exc.message})

    def _count_served(self, model: ModelRuntime, rung: str) -> None:
        if self.ladder_metrics is not None:
            self.ladder_metrics.count_served(model.name, rung)

    def _count_retry(self, model: ModelRuntime, guard: UpstreamGuard, result: str) -> None:
        if self.ladder_metrics is not None:
            self.ladder_metrics.retries.labels(model.name, guard.upstream, result).inc()
