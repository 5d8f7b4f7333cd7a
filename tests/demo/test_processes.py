"""The demo's health wait, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from local_http import serving
from support import free_port

from gateway.demo.processes import Child, DemoError, describe_exit


@pytest.fixture(autouse=True)
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy that is down: the demo's own processes must be probed without it."""
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{free_port()}")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)


def child(tmp_path: Path, url: str, command: list[str] | None = None) -> Child:
    return Child("model", command or [], url, tmp_path / "model.log")


def test_waits_until_the_health_url_answers_200(tmp_path: Path) -> None:
    answers = [503, 503, 200]
    calls: list[str] = []

    async def ready(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response({}, status=answers[min(len(calls), len(answers)) - 1])

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/v2/health/ready", ready)
        async with serving(app) as port:
            probe = child(tmp_path, f"http://127.0.0.1:{port}/v2/health/ready")
            await asyncio.to_thread(probe.wait_healthy, 5.0)

    asyncio.run(scenario())
    assert len(calls) == 3


def test_a_port_nobody_listens_on_is_not_healthy(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    (tmp_path / "model.log").write_text("binding...\n")
    started = time.monotonic()
    with pytest.raises(DemoError, match=rf"model not healthy at {url} after 0.3 s:\n    binding"):
        child(tmp_path, url).wait_healthy(0.3)
    assert time.monotonic() - started < 2.0


def test_a_child_that_exits_is_reported_with_its_code(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    exiting = child(tmp_path, url, [sys.executable, "-c", "print('boom'); raise SystemExit(3)"])
    exiting.start()
    try:
        with pytest.raises(DemoError, match=r"model exited with code 3:\n    boom"):
            exiting.wait_healthy(10.0)
    finally:
        exiting.stop(grace=1.0)


def test_a_stalled_child_stops_on_sigterm_not_after_the_grace(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    # A handler, as servers have: without one a fatal signal kills even a stopped process.
    graceful = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sleeper = child(tmp_path, url, [sys.executable, "-c", graceful])
    sleeper.start()
    assert sleeper.process is not None
    deadline = time.monotonic() + 10
    while "ready" not in sleeper.log_path.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sleeper.signal_group(signal.SIGSTOP)  # `gateway demo fault stall`
    started = time.monotonic()
    sleeper.stop(grace=3.0)
    assert sleeper.process.returncode == 7  # its handler ran: no SIGKILL after the grace
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("code", "said"),
    [(0, "exit code 0"), (3, "exit code 3"), (-9, "killed by SIGKILL"), (-15, "killed by SIGTERM")],
)
def test_an_exit_is_described_by_its_code_or_signal(code: int, said: str) -> None:
    assert describe_exit(code) == said
