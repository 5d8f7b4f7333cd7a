"""The decision layer: what serves a validated request. No HTTP shaping here.

For now one rung: the model's primary upstream with features from the request. The
ladder (cache, fallback model, static default) builds on :meth:`Predictor.forward`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from gateway.contracts.outputs import parse_answer
from gateway.errors import GatewayError, outcome
from gateway.provenance import Provenance
from gateway.runtime import ModelRuntime
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import traceparent
from gateway.upstream.client import post_infer


@dataclass(frozen=True, slots=True)
class Predictor:
    """Calls upstreams for validated requests; owns the client span and upstream metrics."""

    session: aiohttp.ClientSession
    tracer: Tracer
    metrics: GatewayMetrics
    clock: Callable[[], float]

    async def forward(
        self, model: ModelRuntime, body: bytes, parent: Span
    ) -> tuple[dict[str, Any], Provenance]:
        """Send the OIP ``body`` to the model's primary; return its decoded answer.

        The body bytes go out unchanged when the client's request is forwarded as is,
        saving a re-serialization on the hot path.
        """
        upstream = model.primary
        span = self.tracer.start_span(
            f"infer {upstream.name}", context=set_span_in_context(parent), kind=SpanKind.CLIENT
        )
        if span.is_recording():
            span.set_attribute("server.address", upstream.base_url)
            span.set_attribute("gateway.upstream", upstream.name)
        result = "ok"
        started = self.clock()
        try:
            payload = await post_infer(
                self.session, upstream, body, {"traceparent": traceparent(span.get_span_context())}
            )
            answer = parse_answer(upstream.name, payload)
        except GatewayError as exc:
            result = outcome(exc)
            if span.is_recording():
                span.set_status(Status(StatusCode.ERROR, exc.message))
            raise
        finally:
            self.metrics.observe_upstream(model.name, upstream.name, result, self.clock() - started)
            span.end()
        return answer, Provenance("primary", upstream.name, degraded=False, feature_source="none")
