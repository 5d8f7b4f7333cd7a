"""The open-loop generator's schedule and figures, and its stall accounting on a real server."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp import web
from local_http import serving

from loadtest.generator import due_times, read_score, run
from loadtest.payloads import Payload
from loadtest.stats import auc, percentile, summary


def test_due_times_are_evenly_spaced_at_the_rate() -> None:
    times = due_times(200, 2.0)
    assert len(times) == 400
    assert (
        times[0] == 0.0 and times[1] == pytest.approx(0.005) and times[-1] == pytest.approx(1.995)
    )
    assert due_times(0, 5) == [] and due_times(10, 0) == []


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert summary([3.0, 1.0, 2.0], (50, 100)) == {"p50": 2.0, "p100": 3.0}
    with pytest.raises(ValueError):
        percentile([], 50)


def test_auc_by_ranks() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert auc([0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)
    assert auc([1, 1], [0.1, 0.2]) is None


def test_scores_are_read_from_v1_and_v2_answers() -> None:
    assert read_score(orjson.dumps({"predictions": [{"score": 0.25, "label": "legit"}]})) == 0.25
    v2 = {
        "outputs": [{"name": "label", "data": [0]}, {"name": "probabilities", "data": [0.7, 0.3]}]
    }
    assert read_score(orjson.dumps(v2)) == pytest.approx(0.3)
    assert read_score(b"nope") is None and read_score(b"[]") is None


def test_a_stall_shows_in_the_latency_of_every_request_due_during_it() -> None:
    """Coordinated omission: requests due while the server stalls count the stall."""
    stall_until = 0.0

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        wait = stall_until - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        return web.json_response({"predictions": [{"score": 0.5}]},
                                 headers={"x-gateway-variant": "primary"})  # fmt: skip

    async def scenario() -> list[float]:
        nonlocal stall_until
        app = web.Application()
        app.router.add_post("/p", handler)
        async with serving(app) as port:
            stall_until = time.perf_counter() + 0.5  # the first 0.3 s of the run stall
            records = await run(f"http://127.0.0.1:{port}", [Payload("/p", b"{}", 1)], 100, 1.0)
        assert len(records) == 100
        assert all(r.status == 200 and r.variant == "primary" and r.score == 0.5 for r in records)
        return [r.latency for r in records]

    latencies = asyncio.run(scenario())
    # A request due at t waits until the stall ends (~0.5 s): its latency is ~0.5 - t.
    assert latencies[0] > 0.4
    assert latencies[10] > 0.3  # due at 0.1 s, answered at ~0.5 s
    assert percentile(latencies[60:], 50) < 0.1  # after the stall, answers are prompt


def test_connection_errors_are_recorded_not_raised() -> None:
    records = asyncio.run(run("http://127.0.0.1:9", [Payload("/p", b"{}", 0)], 50, 0.2))
    assert len(records) == 10 and {r.status for r in records} == {0}
