"""Shadow traffic: sampled copies of served requests, sent off the response path.

``offer`` never waits and never raises: a sampled request goes into one bounded queue
and a few worker tasks send it to the shadow upstream, compare its scores with the ones
served, and forget it. When the queue is full the copy is dropped and counted, so a slow
or dead shadow can cost the client nothing.

Each shadow call has its own trace: a client span ``shadow <upstream>`` starting a new
trace with a link to the request's span (the call outlives the request, so it is not
its child, as OTel advises for work that follows from a request), its ``traceparent``
sent to the shadow. (The request's ``tracestate`` belongs to the request's trace, so it
stays there.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)

from gateway.contracts.outputs import ScoreReader, parse_answer
from gateway.errors import GatewayError
from gateway.resilience.breaker import CircuitBreaker
from gateway.routing.comparison import PairedComparison
from gateway.settings.schema import ShadowSettings
from gateway.telemetry.tracing import trace_headers
from gateway.upstream.client import Upstream

log = logging.getLogger("gateway.shadow")

# (upstream, OIP body, trace context headers) -> the 200 answer's bytes, or a GatewayError.
Send = Callable[[Upstream, bytes, Mapping[str, str]], Awaitable[bytes]]
_NEW_TRACE = Context()  # no parent: each shadow call starts a trace of its own


@dataclass
class ShadowCounts:
    sent: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0
    compared: int = 0
    skipped_open: int = 0  # the shadow's breaker was open


def shadow_spec(settings: ShadowSettings) -> object:
    """What a shadow target is built from; equal specs mean a reload keeps it. The sample
    percent is routing, not the target's business, so it is left out."""
    return settings.model_dump_json(exclude={"sample_percent"})


@dataclass(eq=False)
class ShadowTarget:
    """One shadow upstream of one model, with its running comparison, counts and breaker.

    Built at config load and kept by a reload while ``spec`` (what it was built from:
    its settings but the sample percent) is unchanged.
    """

    model: str
    upstream: Upstream
    scores: ScoreReader
    # Its own breaker: a failing shadow stops being called, and costs nothing. Shadows
    # never serve clients, so a plain consecutive-failure rule is enough.
    breaker: CircuitBreaker
    spec: object = None
    comparison: PairedComparison = field(default_factory=PairedComparison)
    counts: ShadowCounts = field(default_factory=ShadowCounts)

    @classmethod
    def build(
        cls, model: str, upstream: Upstream, scores: ScoreReader, spec: object = None
    ) -> ShadowTarget:
        breaker = CircuitBreaker(f"{model}/{upstream.name}", fail_max=5, reset_timeout=10.0)
        comparison = PairedComparison(threshold=scores.threshold)
        return cls(model, upstream, scores, breaker, spec, comparison)


@dataclass(frozen=True, slots=True)
class Shadow:
    """A shadow target and the share of served requests copied to it (routing, per load)."""

    target: ShadowTarget
    sample_percent: float

    def as_dict(self) -> dict[str, Any]:
        target, counts = self.target, self.target.counts
        return {
            "upstream": target.upstream.name,
            "sample_percent": self.sample_percent,
            "sent": counts.sent,
            "dropped": counts.dropped,
            "failed": counts.failed,
            "skipped_breaker_open": counts.skipped_open,
            "breaker": target.breaker.state,
            "comparison": target.comparison.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class _Job:
    target: ShadowTarget
    body: bytes
    served: list[float]
    batch: int
    request: SpanContext  # the served request's span, linked from the shadow call's


class ShadowDispatcher:
    """A bounded queue and ``concurrency`` workers shared by every shadow target."""

    def __init__(
        self,
        send: Send,
        *,
        queue_size: int = 256,
        concurrency: int = 4,
        random_source: Callable[[], float] = random.random,
        tracer: Tracer | None = None,
    ) -> None:
        self._send = send
        self._tracer = tracer
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._concurrency = concurrency
        self._random = random_source
        self._workers: list[asyncio.Task[None]] = []

    def offer(
        self,
        shadows: tuple[Shadow, ...],
        body: bytes,
        served: list[float],
        batch: int,
        request: SpanContext = INVALID_SPAN_CONTEXT,
    ) -> None:
        """Queue a copy for each shadow that samples this request; drop when full.
        ``request`` is the served request's span context, which the shadow call links to."""
        for shadow in shadows:
            percent = shadow.sample_percent
            if percent <= 0 or self._random() * 100.0 >= percent:
                continue
            try:
                self._queue.put_nowait(_Job(shadow.target, body, served, batch, request))
            except asyncio.QueueFull:
                shadow.target.counts.dropped += 1

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._shadow(job)
            finally:
                self._queue.task_done()

    async def _shadow(self, job: _Job) -> None:
        target = job.target
        breaker = target.breaker
        if not breaker.allows_call():
            target.counts.skipped_open += 1
            return
        target.counts.sent += 1
        upstream = target.upstream
        name = upstream.name
        headers: Mapping[str, str] = {}
        span = None
        if self._tracer is not None:
            request = job.request
            span = self._tracer.start_span(
                f"shadow {name}",
                context=_NEW_TRACE,
                kind=SpanKind.CLIENT,
                links=[Link(request)] if request.is_valid else None,
            )
            headers = trace_headers(span.get_span_context())
            if span.is_recording():
                span.set_attribute("server.address", upstream.host)
                span.set_attribute("server.port", upstream.port)
                span.set_attribute("gateway.upstream", name)
                span.set_attribute("gateway.model", target.model)
        try:
            with breaker.calling():
                answer = parse_answer(name, await self._send(upstream, job.body, headers))
                shadow = [p["score"] for p in target.scores.predictions(name, answer, job.batch)]
            target.comparison.add(job.served, shadow)
            target.counts.compared += 1
        except (GatewayError, ValueError) as exc:
            target.counts.failed += 1
            log.debug("shadow %s failed: %s", name, exc)
            if span is not None and span.is_recording():
                span.set_status(Status(StatusCode.ERROR, str(exc)))
        finally:
            if span is not None:
                span.end()

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    async def drain(self) -> None:
        """Wait until every queued copy is handled (tests use this)."""
        await self._queue.join()
