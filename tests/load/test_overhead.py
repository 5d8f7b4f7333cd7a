"""The overhead measurement: interleaved targets, added latency, the comparison in percent,
throughput rounds in turn."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from local_http import serving

from loadtest.overhead import _compare, _measure, wrk_rounds


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


@contextlib.contextmanager
def answering(name: str, delay: float, hits: list[str]) -> Iterator[str]:
    """A threaded HTTP server answering every POST after ``delay`` s, noting ``name``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            hits.append(name)
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/infer"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_throughput_rounds_take_turns_under_real_wrk(tmp_path: Path) -> None:
    hits: list[str] = []
    with answering("fast", 0.0, hits) as fast, answering("slow", 0.02, hits) as slow:
        rounds = wrk_rounds(
            {"fast": fast, "slow": slow}, ("/infer", b"{}"), 2, 1, tmp_path / "post.lua"
        )
    assert len(rounds["fast"]) == len(rounds["slow"]) == 2
    # 32 connections, 20 ms per answer: at most 1,600 per second; the fast one does more.
    assert all(r <= 1700 for r in rounds["slow"])
    assert min(rounds["fast"]) > max(rounds["slow"])
    blocks = [name for i, name in enumerate(hits) if i == 0 or hits[i - 1] != name]
    assert blocks == ["fast", "slow"] * 3  # the warm-up, then each round in turn
