"""``gateway rollout status`` asking a real local HTTP server for the live figures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web
from local_http import serving
from support import MODELS, free_port

from gateway.cli import main
from gateway.rollout import commands

CONFIG = f"""models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:8001"}}
    canary: {{name: fraud-v2, url: "http://127.0.0.1:8002", weight: 5}}
"""
TOKEN = "s3cret"
LIVE = {"serving_rungs": ["primary"], "degraded": False, "why": []}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(autouse=True)
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy that is down: a loopback gateway must be reached without it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        for variable in (name, name.lower()):
            monkeypatch.setenv(variable, f"http://127.0.0.1:{free_port()}")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)


def admin_app(*, token: str | None = TOKEN, body: bytes | None = None) -> web.Application:
    """``/admin/status`` guarded as the gateway guards it (403 without a token, else 401)."""

    async def status(request: web.Request) -> web.Response:
        if not token:
            return web.json_response({"error": "the admin API is disabled"}, status=403)
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        if body is not None:
            return web.Response(body=body, content_type="application/json")
        return web.json_response({"models": {"fraud": LIVE}})

    app = web.Application()
    app.router.add_get("/admin/status", status)
    return app


def live_line(app: web.Application, config: Path, *, url_suffix: str = "") -> str:
    """The status text's live part, from the blocking CLI call run beside the server."""

    async def scenario() -> str:
        async with serving(app) as port:
            url = f"http://127.0.0.1:{port}{url_suffix}"
            return await asyncio.to_thread(commands.status, config, "fraud", url)

    text = asyncio.run(scenario())
    return text[text.index("  live ") :]


def test_a_200_answer_shows_the_models_live_figures(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    live = live_line(admin_app(), config, url_suffix="/")
    assert live.startswith("  live     {\n")
    assert json.loads(live.removeprefix("  live     ")) == LIVE  # indented, but the same JSON


def test_the_cli_prints_the_live_figures(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)

    async def scenario() -> int:
        async with serving(admin_app()) as port:
            argv = ["rollout", "--config", str(config), "status", "fraud"]
            argv += ["--gateway-url", f"http://localhost:{port}"]
            return await asyncio.to_thread(main, argv)

    assert asyncio.run(scenario()) == 0
    out = capsys.readouterr().out
    assert "canary   fraud-v2" in out and '"degraded": false' in out


@pytest.mark.parametrize(
    ("server_token", "client_token", "code"),
    [(TOKEN, None, 401), (TOKEN, "wrong", 401), (None, TOKEN, 403)],
)
def test_a_refusal_names_the_token_to_set(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_token: str | None,
    client_token: str | None,
    code: int,
) -> None:
    if client_token is None:
        monkeypatch.delenv("GATEWAY_ADMIN_TOKEN", raising=False)
    else:
        monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", client_token)
    live = live_line(admin_app(token=server_token), config)
    assert live.startswith("  live     not available from http://127.0.0.1:")
    assert live.endswith(f": HTTP {code} (set GATEWAY_ADMIN_TOKEN to the gateway's admin token)")


def test_other_error_statuses_are_reported_without_the_token_hint(config: Path) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/admin/status", broken)
    live = live_line(app, config)
    assert live.endswith(": HTTP 500")


def test_an_answer_that_is_not_json_is_reported(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    live = live_line(admin_app(body=b"<html>"), config)
    assert ": the answer is not JSON (" in live


def test_a_model_the_gateway_does_not_report(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    live = live_line(admin_app(body=b'{"models": {}}'), config)
    assert live.startswith("  live     http://127.0.0.1:")
    assert live.endswith(" reports nothing for 'fraud'")


def test_an_unreachable_gateway_is_reported(config: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    text = commands.status(config, "fraud", url)
    assert text.splitlines()[0] == f"model fraud  (config {config})"
    assert f"  live     not available from {url}: cannot connect (" in text


def test_a_gateway_that_does_not_answer_in_time_is_reported(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commands, "_LIVE_TIMEOUT_SECONDS", 0.2)

    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/admin/status", stall)
    assert live_line(app, config).endswith(": no answer within 0.2 s")


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.3.4.5", True),
        ("http://[::1]:8080/", True),
        ("http://LOCALHOST:8080", True),
        ("https://gateway.internal:8443", False),
        ("http://10.0.0.7", False),
        ("not a url", False),
    ],
)
def test_only_loopback_gateways_bypass_proxy_settings(url: str, loopback: bool) -> None:
    assert commands._loopback(url) is loopback
