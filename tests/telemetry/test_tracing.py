"""Tracer provider setup: config defaults, and the OTEL_* variables taking precedence."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext, TraceFlags, TraceState

from gateway.settings.schema import TelemetrySettings
from gateway.telemetry import tracing

OTEL_VARS = ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER",
             "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


def sampled_share(provider: TracerProvider, n: int = 4000) -> float:
    tracer = provider.get_tracer("t")
    sampled = 0
    for _ in range(n):
        span = tracer.start_span("s")
        sampled += span.is_recording()
        span.end()
    return sampled / n


def test_default_is_parent_based_ten_percent() -> None:
    provider = tracing.build_tracer_provider(TelemetrySettings())
    assert "ParentBased" in provider.sampler.get_description()
    assert "TraceIdRatioBased{0.1}" in provider.sampler.get_description()
    assert 0.07 < sampled_share(provider) < 0.13


def test_sampler_variables_override_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    provider = tracing.build_tracer_provider(TelemetrySettings(sampling_ratio=0.0))
    assert sampled_share(provider, 100) == 1.0


def test_sdk_disabled_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    exporter = InMemorySpanExporter()
    provider = tracing.build_tracer_provider(TelemetrySettings(sampling_ratio=1.0), exporter)
    assert sampled_share(provider, 50) == 0.0
    assert exporter.get_finished_spans() == ()


def test_service_name_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = tracing.build_tracer_provider(TelemetrySettings(service_name="edge"))
    assert provider.resource.attributes["service.name"] == "edge"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-eu")
    provider = tracing.build_tracer_provider(TelemetrySettings(service_name="edge"))
    assert provider.resource.attributes["service.name"] == "edge-eu"


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        ("none", None, type(None)),
        ("console", None, BatchSpanProcessor),
        ("otlp", None, BatchSpanProcessor),
        ("console", "none", type(None)),
        ("none", "console", BatchSpanProcessor),
        ("none", "zipkin", type(None)),
    ],
)
def test_exporter_choice(
    monkeypatch: pytest.MonkeyPatch, configured: str, env: str | None, expected: type
) -> None:
    if env is not None:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", env)
    processor = tracing._processor(TelemetrySettings(exporter=configured), None)  # type: ignore[arg-type]
    assert isinstance(processor, expected)
    if processor is not None:
        processor.shutdown()


def test_an_injected_exporter_is_fed_synchronously() -> None:
    exporter = InMemorySpanExporter()
    assert isinstance(tracing._processor(TelemetrySettings(), exporter), SimpleSpanProcessor)
    provider = tracing.build_tracer_provider(TelemetrySettings(sampling_ratio=1.0), exporter)
    provider.get_tracer("t").start_span("one").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["one"]


def test_traceparent_format() -> None:
    context = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    assert tracing.traceparent(context) == f"00-{0xABC:032x}-{0xDEF:016x}-01"


def test_an_invalid_context_gives_no_headers_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    # OTEL_SDK_DISABLED and no incoming trace: the no-op tracer's all-zero context.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = tracing.build_tracer_provider(TelemetrySettings(sampling_ratio=1.0))
    span = provider.get_tracer("t").start_span("s")
    assert span.get_span_context() == INVALID_SPAN_CONTEXT
    assert tracing.traceparent(span.get_span_context()) is None
    assert tracing.trace_headers(span.get_span_context()) == {}


def test_trace_headers_carry_tracestate_when_there_is_one() -> None:
    plain = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0))
    parent = f"00-{0xABC:032x}-{0xDEF:016x}-00"
    assert tracing.trace_headers(plain) == {"traceparent": parent}
    state = TraceState([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
    stated = SpanContext(0xABC, 0xDEF, False, TraceFlags(0), state)
    assert tracing.trace_headers(stated) == {
        "traceparent": parent,
        "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    }
