"""The operator page in a real browser against a real gateway and model server.

Debian's chromium (``make tools``), driven headless by playwright (no browser download);
the gateway on uvicorn in a thread, in front of a real ``gateway model-server`` process.
The page refuses a wrong token, shows the model with the right one, and shows its breaker
open once the primary has been SIGKILLed under a trickle of requests. The screenshot goes
to pytest's ``tmp_path``; with ``GATEWAY_UI_SCREENSHOT=docs/img/admin-ui.png`` it is also
written there (how the README's picture is made).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ladder_support import FALLBACK_SHA256, TOKEN, admin_status, ladder_config
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import expect, sync_playwright
from support import MODELS, GatewayThread, free_port, model_server_command, running

from gateway.contracts.card import load_card
from gateway.settings import load_config
from loadtest.payloads import load_rows, v2_payloads

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
# Held-out rows, so the data-quality matrix shows what real traffic looks like.
BODIES = [p.body for p in v2_payloads(load_rows(limit=400), load_card(MODELS / "fraud-v1"))]


@contextlib.contextmanager
def trickle(url: str) -> Iterator[None]:
    """A request every 50 ms in a thread for the block, so the page has rates to draw."""
    stop = threading.Event()

    def send() -> None:
        headers = {"content-type": "application/json"}
        with httpx.Client(timeout=10) as client:
            for body in itertools.cycle(BODIES):
                if stop.is_set():
                    return
                client.post(f"{url}/v2/models/fraud/infer", content=body, headers=headers)
                stop.wait(0.05)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_the_operator_page_shows_a_breaker_open_after_the_primary_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: `make tools` installs it"
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    config = load_config(
        ladder_config(
            tmp_path,
            upstream,
            f"""
    breaker: {{consecutive_failures: 3, reset_timeout_seconds: 60}}
    retries: {{max_attempts: 1}}
    fallback: {{card: {MODELS / "fraud-fallback"}, sha256: {FALLBACK_SHA256}}}
    default_response: {{score: 0.05}}
""",
        )
    )
    with (
        GatewayThread(config, InMemorySpanExporter()) as gateway,
        running(model_server_command(MODELS / "fraud-v1", port), f"{upstream}/v2/health/ready") as server,
        trickle(gateway.url),
        sync_playwright() as playwright,
    ):  # fmt: skip
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        problems: list[str] = []
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )

        page.goto(f"{gateway.url}/admin/ui")
        expect(page.locator("#login")).to_be_visible()
        page.fill("#token", "not-the-token")
        page.click("#login button[type=submit]")
        expect(page.locator("#message")).to_contain_text("Refused")
        expect(page.locator("#message")).to_contain_text("did not accept this admin token")
        expect(page.locator("#dashboard")).to_be_hidden()
        # The browser's own note of the refused fetch is expected; nothing else is.
        problems.clear()

        page.fill("#token", TOKEN)
        page.click("#login button[type=submit]")
        model = page.locator('.model[data-model="fraud"]')
        expect(model).to_be_visible()
        expect(page.locator("#message")).to_be_hidden()
        expect(model.locator("h3")).to_have_text("fraud")
        expect(model.locator(".breaker-state").first).to_have_text("closed")
        expect(model.locator(".serving-now strong")).to_have_text("primary", timeout=10_000)
        # For the README's picture, let the sparklines grow before and after the kill.
        target = os.environ.get("GATEWAY_UI_SCREENSHOT")
        page.wait_for_timeout(16_000 if target else 0)

        server.kill()  # SIGKILL, as in tests/e2e/test_ladder_kill.py
        server.wait()
        deadline = time.monotonic() + 10
        while admin_status(gateway.url)["primary"]["breaker"]["state"] != "open":
            assert time.monotonic() < deadline, "the breaker never opened"
            time.sleep(0.05)
        opened = model.locator(".breaker-state.state-open")
        expect(opened).to_have_text("open", timeout=10_000)
        expect(model.locator(".why")).to_contain_text("breaker open")
        expect(page.locator("#events tbody")).to_contain_text("fraud-v1: closed -> open")
        expect(model.locator(".serving-now strong")).to_have_text("fallback", timeout=10_000)
        page.wait_for_timeout(12_000 if target else 0)

        shot = page.screenshot(path=str(tmp_path / "admin-ui.png"), full_page=True)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        if target:
            Path(target).write_bytes(shot)
        browser.close()
    assert problems == []
