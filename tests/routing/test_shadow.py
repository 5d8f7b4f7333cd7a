"""Shadow dispatch: sampling, bounded queue with counted drops, failures kept away."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, SpanContext, SpanKind, TraceFlags, TraceState

from gateway.contracts.outputs import ScoreReader
from gateway.errors import UpstreamUnavailable
from gateway.routing.shadow import Shadow, ShadowDispatcher, ShadowTarget
from gateway.telemetry.tracing import traceparent
from gateway.upstream.client import Upstream

UPSTREAM = Upstream("fraud-v3", "http://shadow", "http://shadow/v2/models/fraud/infer",
                    aiohttp.ClientTimeout(total=1))  # fmt: skip
READER = ScoreReader("probabilities", 1, 0.5, ("legit", "fraud"))


def answer(scores: list[float]) -> bytes:
    data = [x for s in scores for x in (1 - s, s)]
    return orjson.dumps(
        {"outputs": [{"name": "probabilities", "shape": [len(scores), 2], "data": data}]}
    )


def target() -> ShadowTarget:
    return ShadowTarget.build("fraud", UPSTREAM, READER)


def sampled(t: ShadowTarget, percent: float = 100.0) -> tuple[Shadow]:
    return (Shadow(t, percent),)


def test_sampled_copies_are_compared_with_the_served_scores() -> None:
    sent: list[bytes] = []

    async def send(upstream: Upstream, body: bytes, headers: Mapping[str, str]) -> bytes:
        sent.append(body)
        return answer([0.2, 0.9])

    async def scenario() -> ShadowTarget:
        dispatcher = ShadowDispatcher(send)
        dispatcher.start()
        t = target()
        dispatcher.offer(sampled(t), b'{"inputs": []}', [0.1, 0.8], 2)
        await dispatcher.drain()
        await dispatcher.stop()
        return t

    t = asyncio.run(scenario())
    assert sent == [b'{"inputs": []}']
    assert t.counts.compared == 1 and t.comparison.pairs == 2
    assert t.comparison.max_abs_diff == pytest.approx(0.1)


def test_sampling_follows_the_percent() -> None:
    draws = iter([0.04, 0.06, 0.5, 0.01])
    dispatcher = ShadowDispatcher(
        lambda u, b, h: asyncio.sleep(0, b""), random_source=lambda: next(draws)
    )  # type: ignore[arg-type,return-value]
    t = target()

    async def scenario() -> int:
        for _ in range(4):
            dispatcher.offer(sampled(t, 5.0), b"{}", [0.1], 1)
        return dispatcher._queue.qsize()

    assert asyncio.run(scenario()) == 2


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    async def stalled(upstream: Upstream, body: bytes, headers: Mapping[str, str]) -> bytes:
        await asyncio.sleep(3600)
        return b""

    async def scenario() -> ShadowTarget:
        dispatcher = ShadowDispatcher(stalled, queue_size=3, concurrency=1)
        dispatcher.start()
        t = target()
        for _ in range(10):
            dispatcher.offer(sampled(t), b"{}", [0.1], 1)
            await asyncio.sleep(0)
        await dispatcher.stop()
        return t

    t = asyncio.run(scenario())
    assert t.counts.sent == 1  # the one the single worker took
    assert t.counts.dropped == 10 - 1 - 3


def test_a_failing_shadow_is_counted_and_contained() -> None:
    async def failing(upstream: Upstream, body: bytes, headers: Mapping[str, str]) -> bytes:
        raise UpstreamUnavailable(upstream.name, "connection refused")

    async def garbage(upstream: Upstream, body: bytes, headers: Mapping[str, str]) -> bytes:
        return b"not json"

    async def scenario() -> tuple[ShadowTarget, ShadowTarget]:
        results = []
        for send in (failing, garbage):
            dispatcher = ShadowDispatcher(send)
            dispatcher.start()
            t = target()
            dispatcher.offer(sampled(t), b"{}", [0.1], 1)
            await dispatcher.drain()
            await dispatcher.stop()
            results.append(t)
        return results[0], results[1]

    for t in asyncio.run(scenario()):
        assert t.counts.failed == 1 and t.counts.compared == 0


REQUEST = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False,
                      TraceFlags(1), TraceState([("vendor", "abc")]))  # fmt: skip


def shadow_once(dispatcher_kwargs: dict[str, object]) -> list[Mapping[str, str]]:
    """One sampled shadow call of a request in ``REQUEST``; the headers it was sent with."""
    headers_sent: list[Mapping[str, str]] = []

    async def send(upstream: Upstream, body: bytes, headers: Mapping[str, str]) -> bytes:
        headers_sent.append(headers)
        return answer([0.2])

    async def scenario() -> None:
        dispatcher = ShadowDispatcher(send, **dispatcher_kwargs)  # type: ignore[arg-type]
        dispatcher.start()
        dispatcher.offer(sampled(target()), b"{}", [0.1], 1, REQUEST)
        await dispatcher.drain()
        await dispatcher.stop()

    asyncio.run(scenario())
    return headers_sent


def test_a_shadow_call_is_a_client_span_of_its_own_trace_linked_to_the_request() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    [headers] = shadow_once({"tracer": provider.get_tracer("test")})
    [span] = exporter.get_finished_spans()
    assert span.name == "shadow fraud-v3" and span.kind is SpanKind.CLIENT
    assert span.parent is None and span.context.trace_id != REQUEST.trace_id
    assert [link.context for link in span.links] == [REQUEST]
    assert (
        dict(span.attributes or {}).items()
        >= {"server.address": "shadow", "server.port": 80}.items()
    )
    assert headers == {"traceparent": traceparent(span.context)}


def test_without_a_trace_a_shadow_call_sends_no_trace_context() -> None:
    # OTEL_SDK_DISABLED: the no-op tracer gives no valid context, so nothing is sent.
    assert shadow_once({"tracer": NoOpTracer()}) == [{}]
