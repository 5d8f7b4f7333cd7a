"""The overhead measurement: interleaved targets, added latency, the comparison in percent."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from local_http import serving

from loadtest.overhead import _compare, _measure


def test_comparison_is_relative_to_the_other_revisions_added_latency() -> None:
    report = {
        "added": {"p50_ms": 1.1, "p99_ms": 2.0},
        "added_v0": {"p50_ms": 1.0, "p99_ms": 2.5},
    }
    assert _compare(report, "v0") == {"p50_ms": 10.0, "p99_ms": -20.0}


def test_every_target_is_measured_in_turn_and_compared_with_direct() -> None:
    hits: list[str] = []

    def app(name: str, delay: float) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            hits.append(name)
            await asyncio.sleep(delay)
            return web.json_response({})

        application = web.Application()
        application.router.add_post("/infer", answer)
        return application

    async def scenario() -> dict[str, Any]:
        async with (
            serving(app("direct", 0)) as direct,
            serving(app("gateway", 0.01)) as gateway,
            serving(app("v0", 0.005)) as v0,
        ):
            targets = {
                name: f"http://127.0.0.1:{port}/infer"
                for name, port in (("direct", direct), ("gateway", gateway), ("v0", v0))
            }
            return await _measure(targets, b"{}", 20)

    report = asyncio.run(scenario())
    assert hits[-3:] == ["direct", "gateway", "v0"]  # one request each, in turn
    assert report["requests_each"] == 20
    assert report["added"]["p50_ms"] > report["added_v0"]["p50_ms"] > 2
    assert _compare(report, "v0")["p50_ms"] > 0
