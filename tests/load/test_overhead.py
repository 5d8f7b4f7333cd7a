"""The overhead measurement: interleaved targets, added latency, the comparison in percent,
throughput rounds in turn."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from local_http import serving, serving_in_thread

from loadtest.overhead import _compare, _measure, wrk_rounds


def answering(name: str, delay: float, hits: list[str]) -> web.Application:
    """An app answering every POST after ``delay`` s, noting ``name``."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        hits.append(name)
        await asyncio.sleep(delay)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/infer", answer)
    return app


def test_comparison_is_relative_to_the_other_revisions_added_latency() -> None:
    report = {
        "added": {"p50_ms": 1.1, "p99_ms": 2.0},
        "added_v0": {"p50_ms": 1.0, "p99_ms": 2.5},
    }
    assert _compare(report, "v0") == {"p50_ms": 10.0, "p99_ms": -20.0}


def test_every_target_is_measured_in_turn_and_compared_with_direct() -> None:
    hits: list[str] = []

    async def scenario() -> dict[str, Any]:
        async with (
            serving(answering("direct", 0, hits)) as direct,
            serving(answering("gateway", 0.01, hits)) as gateway,
            serving(answering("v0", 0.005, hits)) as v0,
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


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_throughput_rounds_take_turns_under_real_wrk(tmp_path: Path) -> None:
    hits: list[str] = []
    with (
        serving_in_thread(answering("fast", 0.0, hits)) as fast,
        serving_in_thread(answering("slow", 0.1, hits)) as slow,
    ):
        urls = {"fast": f"{fast}/infer", "slow": f"{slow}/infer"}
        rounds = wrk_rounds(urls, ("/infer", b"{}"), 2, 1, tmp_path / "post.lua")
    assert len(rounds["fast"]) == len(rounds["slow"]) == 2
    # 32 connections, 100 ms per answer: at most 320 per second; the fast one does more.
    assert all(r <= 340 for r in rounds["slow"])
    assert min(rounds["fast"]) > max(rounds["slow"])
    blocks = [name for i, name in enumerate(hits) if i == 0 or hits[i - 1] != name]
    assert blocks == ["fast", "slow"] * 3  # the warm-up, then each round in turn
