"""SIGKILL the primary model server under a steady stream: the ladder answers every request.

A real ``gateway model-server`` process behind the gateway (uvicorn in a thread); the
fallback ONNX model serves while the primary is dead, the breaker opens within its
threshold, and after a restart it half-opens, admits one trial, closes, and the primary
serves again.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from ladder_support import FALLBACK_SHA256, TOKEN, admin_status, ladder_config, metric
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, free_port, model_server_command, running

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.settings import load_config

pytestmark = pytest.mark.e2e

BODY = sample_infer_request(load_card(MODELS / "fraud-v1"), "kill")
CONSECUTIVE = 3


def _stream(
    url: str, stop: threading.Event, log: list[tuple[float, float, int, str]], pause: float
) -> None:
    """Send one request after another until ``stop``; log (sent, answered, status, variant)."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = client.post(f"{url}/v2/models/fraud/infer", json=BODY)
                variant = response.headers.get("x-gateway-variant", "")
                log.append((sent, time.monotonic(), response.status_code, variant))
            except httpx.HTTPError as exc:
                log.append((sent, time.monotonic(), 0, type(exc).__name__))
            time.sleep(pause)


def test_sigkill_primary_under_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    config = load_config(
        ladder_config(
            tmp_path,
            upstream,
            f"""
    breaker: {{consecutive_failures: {CONSECUTIVE}, reset_timeout_seconds: 1.0, half_open_max_calls: 1}}
    retries: {{max_attempts: 1}}
    timeouts: {{total_ms: 5000, per_try_ms: 3000}}
    fallback: {{card: {MODELS / "fraud-fallback"}, sha256: {FALLBACK_SHA256}}}
""",
        )
    )
    log: list[tuple[float, float, int, str]] = []
    stop = threading.Event()
    with GatewayThread(config, InMemorySpanExporter()) as gateway:
        metrics = gateway.app.state.gateway.metrics.registry
        with running(
            model_server_command(MODELS / "fraud-v1", port), f"{upstream}/v2/health/ready"
        ) as server:
            streams = [
                threading.Thread(target=_stream, args=(gateway.url, stop, log, 0.01))
                for _ in range(2)
            ]
            for thread in streams:
                thread.start()
            time.sleep(1.0)
            kill_started = time.monotonic()
            server.kill()  # SIGKILL: no goodbye, connections drop mid-flight
            server.wait()
            killed_at = time.monotonic()
            deadline = killed_at + 15
            while admin_status(gateway.url)["primary"]["breaker"]["state"] == "closed":
                assert time.monotonic() < deadline, "the breaker never opened"
                time.sleep(0.01)
            time.sleep(0.5)  # the stream keeps going against the open breaker
            stop.set()
            for thread in streams:
                thread.join(timeout=20)

        assert log, "the stream sent nothing"
        assert all(status == 200 for _, _, status, _ in log), [e for e in log if e[2] != 200][:5]
        # Answered before the kill: the primary. Sent after it: the fallback. A request in
        # flight across the kill may go either way (a slow CI machine stretches that span).
        before = [v for _, answered, _, v in log if answered < kill_started]
        after = [v for sent, _, _, v in log if sent > killed_at]
        assert before and set(before) == {"primary"}
        assert after and set(after) == {"fallback"}, sorted(set(after))
        failed_calls = sum(
            metric(metrics, "gateway_upstream_requests_total",
                   model="fraud", upstream="fraud-v1", outcome=outcome)
            for outcome in ("upstream_unavailable", "upstream_timeout", "upstream_bad_response")
        )  # fmt: skip
        # Each in-flight request at the kill may fail on its own; then the breaker opens.
        assert 1 <= failed_calls <= CONSECUTIVE + len(streams)
        status = admin_status(gateway.url)
        assert status["degraded"] is True
        assert "consecutive failures" in status["primary"]["breaker"]["trip_reason"]

        # Restarted, slow, so the one half-open trial is still in flight while others arrive
        # (2 s: ten requests must reach the gateway meanwhile, even on a busy machine).
        slow = model_server_command(
            MODELS / "fraud-v1", port, "--fault-mode", "slow", "--fault-delay-ms", "2000"
        )
        with running(slow, f"{upstream}/v2/health/ready"):
            deadline = time.monotonic() + 15
            while admin_status(gateway.url)["primary"]["breaker"]["state"] != "half_open":
                assert time.monotonic() < deadline, "the breaker never half-opened"
                time.sleep(0.05)
            with ThreadPoolExecutor(12) as pool:
                trial = pool.submit(_post, gateway.url)
                deadline = time.monotonic() + 10
                while (
                    admin_status(gateway.url)["primary"]["breaker"]["half_open_trials_in_flight"]
                    < 1
                ):
                    assert time.monotonic() < deadline, "the trial call never started"
                    time.sleep(0.01)
                others = [pool.submit(_post, gateway.url) for _ in range(10)]
                extra = [f.result() for f in others]
                received_during_trial = _infer_count(upstream)
                first = trial.result()
            assert first.headers["x-gateway-variant"] == "primary"
            assert [r.headers["x-gateway-variant"] for r in extra] == ["fallback"] * 10
            assert received_during_trial == 1  # half_open_max_calls
            assert admin_status(gateway.url)["primary"]["breaker"]["state"] == "closed"
            after_close = _post(gateway.url)
            assert after_close.headers["x-gateway-variant"] == "primary"
            assert after_close.headers["x-gateway-served-by"] == "fraud-v1"


def _post(url: str) -> httpx.Response:
    response = httpx.post(f"{url}/v2/models/fraud/infer", json=BODY, timeout=10)
    assert response.status_code == 200, response.text
    return response


def _infer_count(upstream: str) -> Any:
    return httpx.get(f"{upstream}/_debug/stats").json()["infer_requests"]
