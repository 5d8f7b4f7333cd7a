"""Real misbehaving upstreams: each trips its breaker by its configured rule; the ladder serves.

One ``gateway model-server`` process for the module, its fault switched per test over
``POST /_debug/fault``; a fresh gateway (uvicorn in a thread) per test.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from ladder_support import FALLBACK_SHA256, TOKEN, admin_status, ladder_config, metric
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import (
    MODELS,
    GatewayThread,
    ModelServer,
    free_port,
    model_server_command,
    model_server_running,
    running,
    write_config,
)

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.settings import load_config

pytestmark = pytest.mark.e2e

BODY = sample_infer_request(load_card(MODELS / "fraud-v1"), "fault")
FALLBACK = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ModelServer]:
    with model_server_running() as server:
        yield server


@pytest.fixture(autouse=True)
def admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)


def set_fault(server: ModelServer, mode: str, **extra: Any) -> None:
    response = httpx.post(f"{server.url}/_debug/fault", json={"mode": mode, **extra})
    assert response.status_code == 200, response.text


def infer_count(server: ModelServer) -> int:
    count: int = httpx.get(f"{server.url}/_debug/stats").json()["infer_requests"]
    return count


def gateway_for(tmp_path: Path, server: ModelServer, extra: str) -> GatewayThread:
    config = load_config(ladder_config(tmp_path, server.url, extra + FALLBACK))
    return GatewayThread(config, InMemorySpanExporter())


def send(url: str, count: int) -> list[httpx.Response]:
    with httpx.Client(timeout=10) as client:
        return [client.post(f"{url}/v2/models/fraud/infer", json=BODY) for _ in range(count)]


def test_slow_upstream_trips_on_the_slow_call_rate(tmp_path: Path, upstream: ModelServer) -> None:
    set_fault(upstream, "slow", delay_ms=600)
    extra = """
    breaker: {consecutive_failures: 0, slow_call_rate_percent: 50, slow_call_ms: 100,
              minimum_calls: 4, window: {kind: count, size: 10}, reset_timeout_seconds: 60}
    timeouts: {total_ms: 2000, per_try_ms: 150}
    retries: {max_attempts: 1}
"""
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway:
            answers = send(gateway.url, 10)
            status = admin_status(gateway.url)
    finally:
        set_fault(upstream, "normal")
    assert [a.status_code for a in answers] == [200] * 10
    assert {a.headers["x-gateway-variant"] for a in answers} == {"fallback"}
    assert all(a.headers["x-gateway-degraded"] == "true" for a in answers)
    breaker = status["primary"]["breaker"]
    assert breaker["state"] == "open"
    assert breaker["trip_reason"].startswith("slow-call rate")
    assert "over 4 calls" in breaker["trip_reason"]  # tripped as soon as the rule could judge


def test_error_rate_upstream_trips_on_the_failure_rate(
    tmp_path: Path, upstream: ModelServer
) -> None:
    set_fault(upstream, "error", rate=0.5, seed=11)
    extra = """
    breaker: {consecutive_failures: 0, failure_rate_percent: 30, minimum_calls: 10,
              window: {kind: count, size: 10}, reset_timeout_seconds: 60}
    retries: {max_attempts: 1}
"""
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway:
            before = infer_count(upstream)
            answers = send(gateway.url, 40)
            sent_upstream = infer_count(upstream) - before
            status = admin_status(gateway.url)
    finally:
        set_fault(upstream, "normal")
    assert [a.status_code for a in answers] == [200] * 40
    variants = [a.headers["x-gateway-variant"] for a in answers]
    assert set(variants) == {"primary", "fallback"}
    assert status["primary"]["breaker"]["state"] == "open"
    assert status["primary"]["breaker"]["trip_reason"].startswith("failure rate")
    assert "over 10 calls" in status["primary"]["breaker"]["trip_reason"]
    assert sent_upstream == 10  # opened on the tenth call; nothing reached the upstream since
    assert variants[10:] == ["fallback"] * 30


def test_nan_answers_trip_on_consecutive_output_violations(
    tmp_path: Path, upstream: ModelServer
) -> None:
    set_fault(upstream, "nan")
    extra = """
    breaker: {consecutive_failures: 3, reset_timeout_seconds: 60}
    retries: {max_attempts: 1}
"""
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway:
            before = infer_count(upstream)
            answers = send(gateway.url, 8)
            sent_upstream = infer_count(upstream) - before
            status = admin_status(gateway.url)
            registry = gateway.app.state.gateway.metrics.registry
            served = metric(registry, "gateway_served_by_total", model="fraud", rung="fallback")
    finally:
        set_fault(upstream, "normal")
    assert [a.status_code for a in answers] == [200] * 8
    assert {a.headers["x-gateway-served-by"] for a in answers} == {"fallback:onnx"}
    assert all(a.json()["parameters"]["gateway_variant"] == "fallback" for a in answers)
    assert all(a.json()["model_version"] == "fallback" for a in answers)
    assert sent_upstream == 3
    assert status["primary"]["breaker"]["trip_reason"] == "3 consecutive failures"
    assert "output contract" in status["primary"]["last_failure"]
    assert served == 8


def test_retries_stay_within_the_budget(tmp_path: Path, upstream: ModelServer) -> None:
    set_fault(upstream, "error")
    extra = """
    breaker: {consecutive_failures: 100000, reset_timeout_seconds: 60}
    retries: {max_attempts: 3, retry_on_statuses: [500], budget_percent: 20, min_retries: 2,
              backoff_base_ms: 1, backoff_max_ms: 2}
"""
    requests = 50
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway:
            before = infer_count(upstream)
            answers = send(gateway.url, requests)
            attempts = infer_count(upstream) - before
            registry = gateway.app.state.gateway.metrics.registry
            refused = metric(
                registry,
                "gateway_upstream_retries_total",
                model="fraud",
                upstream="fraud-v1",
                result="budget_exhausted",
            )
    finally:
        set_fault(upstream, "normal")
    assert [a.status_code for a in answers] == [200] * requests
    assert {a.headers["x-gateway-variant"] for a in answers} == {"fallback"}
    # Without a budget 3 attempts each would make 150; the budget allows 20% + 2.
    assert requests < attempts <= requests + requests * 0.2 + 2
    assert refused > 0


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def test_bulkhead_sheds_to_the_fallback_at_once(tmp_path: Path, upstream: ModelServer) -> None:
    set_fault(upstream, "slow", delay_ms=4000)
    extra = """
    bulkhead: {max_concurrent: 2, max_queue: 1, max_queue_wait_ms: 5, when_full: fallback}
    timeouts: {total_ms: 8000, per_try_ms: 6000}
    retries: {max_attempts: 1}
"""
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway:
            before = infer_count(upstream)
            stalled: list[httpx.Response] = []
            holders = [
                threading.Thread(target=lambda: stalled.extend(send(gateway.url, 1)))
                for _ in range(2)
            ]
            for holder in holders:
                holder.start()
            deadline = time.monotonic() + 10
            while infer_count(upstream) - before < 2:  # both slots are taken and stalled
                assert time.monotonic() < deadline
                time.sleep(0.02)
            with httpx.Client(timeout=10) as client:
                send_one = lambda: client.post(f"{gateway.url}/v2/models/fraud/infer", json=BODY)  # noqa: E731
                for _ in range(50):  # warm up the client and the fallback path
                    send_one()
                rss_before = _rss_bytes()
                with ThreadPoolExecutor(8) as pool:
                    shed = list(pool.map(lambda _: send_one(), range(400)))
                rss_after = _rss_bytes()
            status = admin_status(gateway.url)
            for holder in holders:
                holder.join(timeout=15)
    finally:
        set_fault(upstream, "normal")
    assert [r.status_code for r in shed] == [200] * 400
    assert {r.headers["x-gateway-variant"] for r in shed} == {"fallback"}
    latencies = sorted(r.elapsed.total_seconds() for r in shed)
    # "A few milliseconds": the median is; the tail gets a wide margin on a shared 2-core box.
    assert latencies[len(latencies) // 2] < 0.05, latencies[len(latencies) // 2]
    assert latencies[-1] < 1.0
    assert infer_count(upstream) - before == 2  # nothing beyond the limit reached the upstream
    assert rss_after - rss_before < 16 * 1024 * 1024
    assert status["primary"]["bulkhead"]["rejected"] >= 400
    assert [r.headers["x-gateway-variant"] for r in stalled] == ["primary", "primary"]


def test_a_client_deadline_shortens_the_wait_for_a_slow_upstream(
    tmp_path: Path, upstream: ModelServer
) -> None:
    set_fault(upstream, "slow", delay_ms=1500)
    extra = """
    breaker: {consecutive_failures: 100, reset_timeout_seconds: 60}
    timeouts: {total_ms: 5000, per_try_ms: 4000, fallback_reserve_ms: 50}
    retries: {max_attempts: 1}
"""
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway, httpx.Client(timeout=10) as client:
            url = f"{gateway.url}/v2/models/fraud/infer"
            by_header = client.post(url, json=BODY, headers={"x-request-timeout-ms": "250"})
            by_parameter = client.post(url, json=BODY | {"parameters": {"timeout_ms": 250}})
    finally:
        set_fault(upstream, "normal")
    for response in (by_header, by_parameter):
        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-variant"] == "fallback"
        assert response.elapsed.total_seconds() < 1.0  # not the upstream's 1.5 s


def test_a_full_bulkhead_may_reject_with_retry_after(tmp_path: Path, upstream: ModelServer) -> None:
    set_fault(upstream, "slow", delay_ms=2000)
    extra = """
    bulkhead: {max_concurrent: 1, max_queue: 0, when_full: reject}
    timeouts: {total_ms: 5000, per_try_ms: 4000}
"""
    try:
        with gateway_for(tmp_path, upstream, extra) as gateway:
            before = infer_count(upstream)
            holder = threading.Thread(target=lambda: send(gateway.url, 1))
            holder.start()
            deadline = time.monotonic() + 10
            while infer_count(upstream) - before < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            refused = send(gateway.url, 1)[0]
            holder.join(timeout=10)
    finally:
        set_fault(upstream, "normal")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "bulkhead full" in refused.json()["error"]


def test_a_retry_goes_to_the_next_replica(tmp_path: Path, upstream: ModelServer) -> None:
    set_fault(upstream, "error")  # the first endpoint always answers 500
    port = free_port()
    healthy = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, upstream.url, """
    retries: {max_attempts: 2, retry_on_statuses: [500], budget_percent: 100, min_retries: 5}
    breaker: {consecutive_failures: 1000}
""")  # fmt: skip
    text = config.read_text().replace(
        "timeout_ms: 2000}", f'timeout_ms: 2000, replicas: ["{healthy}"]}}'
    )
    config.write_text(text)
    try:
        with (
            running(model_server_command(MODELS / "fraud-v1", port), f"{healthy}/v2/health/ready"),
            GatewayThread(load_config(config), InMemorySpanExporter()) as gateway,
        ):
            before = infer_count(upstream)
            answers = send(gateway.url, 20)
            failing_attempts = infer_count(upstream) - before
            healthy_calls = httpx.get(f"{healthy}/_debug/stats").json()["infer_requests"]
            status = admin_status(gateway.url)
    finally:
        set_fault(upstream, "normal")
    assert [a.status_code for a in answers] == [200] * 20  # no fallback configured: all real
    assert {a.headers["x-gateway-served-by"] for a in answers} == {"fraud-v1#2"}
    assert {a.headers["x-gateway-variant"] for a in answers} == {"primary"}
    assert healthy_calls == 20
    assert 5 <= failing_attempts <= 15  # round robin: about half start on the failing one
    names = [e["name"] for e in status["primary"]["endpoints"]]
    assert names == ["fraud-v1", "fraud-v1#2"]
