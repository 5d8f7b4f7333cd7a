"""Tracer provider setup: built per app and returned, never installed as a global.

Precedence: the standard ``OTEL_*`` variables, when set, win over ``telemetry:`` in the
config, so one config file serves every deployment. ``OTEL_SDK_DISABLED=true`` turns
tracing off (spans become non-recording; an incoming ``traceparent`` and ``tracestate``
are still propagated, and without one no trace context is sent at all).
"""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanContext

from gateway.settings.schema import TelemetrySettings

log = logging.getLogger(__name__)


def build_tracer_provider(
    settings: TelemetrySettings, exporter: SpanExporter | None = None
) -> TracerProvider:
    """A provider honouring ``settings`` and ``OTEL_*``.

    ``exporter`` (tests pass the SDK's in-memory exporter) replaces the configured one and is
    fed synchronously, so spans are readable as soon as the request has finished.
    """
    env = os.environ
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    service = env.get("OTEL_SERVICE_NAME") or settings.service_name
    sampler: Sampler | None
    if disabled:
        sampler = ALWAYS_OFF
    elif env.get("OTEL_TRACES_SAMPLER"):
        sampler = None  # the SDK reads OTEL_TRACES_SAMPLER and its _ARG itself
    else:
        sampler = ParentBased(TraceIdRatioBased(settings.sampling_ratio))
    provider = TracerProvider(sampler=sampler, resource=Resource.create({SERVICE_NAME: service}))
    if disabled:
        return provider
    processor = _processor(settings, exporter)
    if processor is not None:
        provider.add_span_processor(processor)
    return provider


def _processor(settings: TelemetrySettings, exporter: SpanExporter | None) -> SpanProcessor | None:
    if exporter is not None:
        return SimpleSpanProcessor(exporter)
    choice = (
        env_choice := os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    ) or settings.exporter
    if choice == "none":
        return None
    if choice == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    if choice == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning("OTLP protocol %r is not bundled; exporting over http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Endpoint, headers and timeout come from OTEL_EXPORTER_OTLP_* as the SDK defines them.
        return BatchSpanProcessor(OTLPSpanExporter())
    source = "OTEL_TRACES_EXPORTER" if env_choice else "telemetry.exporter"
    log.warning("unknown trace exporter %r in %s; tracing spans are not exported", choice, source)
    return None


def traceparent(context: SpanContext) -> str | None:
    """The W3C ``traceparent`` header value for ``context``; None for an invalid context
    (all-zero ids, as a no-op tracer gives without an incoming trace), which is never sent."""
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def trace_headers(context: SpanContext) -> dict[str, str]:
    """The W3C trace context headers for a call made in ``context``: ``traceparent`` and,
    when the trace carries one, ``tracestate``; none at all for an invalid context."""
    parent = traceparent(context)
    if parent is None:
        return {}
    state = context.trace_state
    if state:
        return {"traceparent": parent, "tracestate": state.to_header()}
    return {"traceparent": parent}
