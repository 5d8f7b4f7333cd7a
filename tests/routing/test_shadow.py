"""Shadow dispatch: sampling, bounded queue with counted drops, failures kept away."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from gateway.contracts.outputs import ScoreReader
from gateway.errors import UpstreamUnavailable
from gateway.routing.shadow import Shadow, ShadowDispatcher, ShadowTarget
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

    async def send(upstream: Upstream, body: bytes) -> bytes:
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
        lambda u, b: asyncio.sleep(0, b""), random_source=lambda: next(draws)
    )  # type: ignore[arg-type,return-value]
    t = target()

    async def scenario() -> int:
        for _ in range(4):
            dispatcher.offer(sampled(t, 5.0), b"{}", [0.1], 1)
        return dispatcher._queue.qsize()

    assert asyncio.run(scenario()) == 2


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    async def stalled(upstream: Upstream, body: bytes) -> bytes:
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
    async def failing(upstream: Upstream, body: bytes) -> bytes:
        raise UpstreamUnavailable(upstream.name, "connection refused")

    async def garbage(upstream: Upstream, body: bytes) -> bytes:
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
