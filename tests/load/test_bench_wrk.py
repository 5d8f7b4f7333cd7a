"""The bench's wrk scripts: Lua quoting, body rotation, reading wrk's report; one real wrk run."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from local_http import serving_in_thread

from loadtest import wrk

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080/v1/models/fraud:predict
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.50ms    3.12ms  40.10ms   80.00%
    Req/Sec     1.49k    80.00     1.60k    70.00%
  2980 requests in 2.00s, 1.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1489.52
Transfer/sec:    562.00KB
"""


def test_lua_strings_escape_quotes_backslashes_and_non_ascii() -> None:
    assert wrk.lua_string(b'{"a": "b"}') == '"{\\"a\\": \\"b\\"}"'
    assert wrk.lua_string(b"a\\b") == '"a\\\\b"'
    assert wrk.lua_string("é\n".encode()) == '"\\195\\169\\010"'


def test_one_body_is_a_fixed_wrk_body() -> None:
    text = wrk.script([("/v2/models/fraud/infer", b'{"inputs": []}')])
    assert 'wrk.body = "{\\"inputs\\": []}"' in text
    assert "function request" not in text and 'wrk.method = "POST"' in text


def test_several_bodies_are_formatted_once_and_rotated() -> None:
    requests = [("/v1/models/fraud:predict", f'{{"n": {i}}}'.encode()) for i in range(3)]
    text = wrk.script(requests)
    for i in range(3):
        assert text.count(f'{{"/v1/models/fraud:predict", "{{\\"n\\": {i}}}"}},') == 1
    assert "function init(args)" in text and "wrk.format(nil, r[1], nil, r[2])" in text
    assert "turn = turn % #formatted + 1" in text
    with pytest.raises(ValueError):
        wrk.script([])


def test_wrk_report_is_read_with_every_kind_of_error() -> None:
    result = wrk.parse(WRK_OUTPUT)
    assert result == wrk.WrkResult(1489.52, 2980, 4, connect=0, read=2, write=0, timeout=1,
                                   seconds=2.0)  # fmt: skip
    assert result.socket_errors == 3 and result.failures == 7
    clean = wrk.parse(
        WRK_OUTPUT.replace("  Non-2xx or 3xx responses: 4\n", "").replace(
            "  Socket errors: connect 0, read 2, write 0, timeout 1\n", ""
        )
    )
    assert clean.non_2xx == 0 and clean.socket_errors == 0 and clean.failures == 0
    with pytest.raises(RuntimeError):
        wrk.parse("wrk: connection refused")


def test_throughput_counts_successful_answers_only() -> None:
    # wrk's Requests/sec counts error answers: a gateway answering 503 fast is not fast.
    result = wrk.parse(WRK_OUTPUT)
    assert result.ok == 2976 and result.ok_per_second == 1488.0
    failing = wrk.WrkResult(10000.0, 20000, 19000, seconds=2.0)
    assert failing.ok_per_second == 500.0
    assert wrk.WrkResult(100.0, 200, 50).ok_per_second == 75.0  # no duration: wrk's rate


@pytest.mark.parametrize(("text", "seconds"), [("2.00s", 2.0), ("500.10ms", 0.5001),
                                                ("1.00m", 60.0)])  # fmt: skip
def test_the_runs_length_is_read_in_its_unit(text: str, seconds: float) -> None:
    result = wrk.parse(WRK_OUTPUT.replace("in 2.00s", f"in {text}"))
    assert result.seconds == pytest.approx(seconds)


def test_a_run_with_error_answers_is_counted_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Done:
        stdout, stderr, returncode = WRK_OUTPUT, "", 0

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    result = wrk.run("http://x/p", [("/p", b"{}")], 32, 1, tmp_path / "s.lua", None)
    assert result.non_2xx == 4 and result.timeout == 1


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An aiohttp server in a thread that records (path, body) of every POST."""
    seen: list[tuple[str, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path, await request.read()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    with serving_in_thread(app) as base:
        yield base, seen


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_real_wrk_sends_each_body_in_turn(
    recording_server: tuple[str, list[tuple[str, bytes]]], tmp_path: Path
) -> None:
    base, seen = recording_server
    requests = [(f"/p{i}", f'{{"n": {i}, "s": "\\u00e9"}}'.encode()) for i in range(3)]
    result = wrk.run(base + "/p0", requests, 1, 1, tmp_path / "post.lua", None)
    assert result.requests >= 3 and result.non_2xx == 0
    assert set(seen) == set(requests)
    # One connection: the server sees the bodies in the script's order, over and over.
    first = requests.index(seen[0])
    assert seen[:6] == [requests[(first + i) % 3] for i in range(6)]


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_real_wrk_counts_error_answers_and_a_refused_port(tmp_path: Path) -> None:
    seen = 0

    async def every_other_fails(request: web.Request) -> web.Response:
        nonlocal seen
        await request.read()
        seen += 1
        return web.json_response({}, status=503 if seen % 2 else 200)

    app = web.Application()
    app.router.add_post("/p", every_other_fails)
    with serving_in_thread(app) as base:
        result = wrk.run(base + "/p", [("/p", b"{}")], 2, 1, tmp_path / "post.lua", None)
    assert result.requests > 10 and abs(result.non_2xx - result.requests / 2) <= 1
    assert result.ok_per_second < result.requests_per_second * 0.6
    # Nothing listening: wrk does not start, and the run is an error, never a figure.
    with pytest.raises(RuntimeError, match="unable to connect"):
        wrk.run("http://127.0.0.1:9/p", [("/p", b"{}")], 2, 1, tmp_path / "post.lua", None)
