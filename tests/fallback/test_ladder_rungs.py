"""The lower rungs over real HTTP: the gateway on uvicorn in front of a port nobody listens on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ladder_support import FALLBACK_SHA256, TOKEN, admin_status, ladder_config, metric
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, free_port

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.settings import load_config

BODY = sample_infer_request(load_card(MODELS / "fraud-v1"), "rungs")
INSTANCE = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
            "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
            "hour": 14, "is_foreign": False}  # fmt: skip
FALLBACK = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"
DEFAULT = "    default_response: {score: 0.05}\n"
FAST = "    breaker: {consecutive_failures: 2, reset_timeout_seconds: 60}\n"


@pytest.fixture(autouse=True)
def admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)


@pytest.fixture
def dead_upstream() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused


def gateway(tmp_path: Path, upstream: str, extra: str) -> Iterator[GatewayThread]:
    config = load_config(ladder_config(tmp_path, upstream, extra))
    with GatewayThread(config, InMemorySpanExporter()) as thread:
        yield thread


@pytest.fixture
def with_fallback(tmp_path: Path, dead_upstream: str) -> Iterator[GatewayThread]:
    yield from gateway(tmp_path, dead_upstream, FAST + FALLBACK + DEFAULT)


def infer(url: str, body: dict[str, Any] = BODY, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/fraud/infer", json=body, headers=headers, timeout=10)


def test_v2_is_served_by_the_fallback_and_says_so(with_fallback: GatewayThread) -> None:
    response = infer(with_fallback.url)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-variant"] == "fallback"
    assert response.headers["x-gateway-served-by"] == "fallback:onnx"
    assert response.headers["x-gateway-degraded"] == "true"
    assert response.headers["x-gateway-feature-source"] == "none"
    answer = response.json()
    assert answer["model_name"] == "fraud"
    assert answer["id"] == "rungs"
    assert answer["parameters"]["gateway_served_by"] == "fallback:onnx"
    assert {o["name"] for o in answer["outputs"]} == {"label", "probabilities"}


def test_v1_is_served_by_the_fallback(with_fallback: GatewayThread) -> None:
    response = httpx.post(
        f"{with_fallback.url}/v1/models/fraud:predict", json={"instances": [INSTANCE, INSTANCE]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provenance"] == {
        "variant": "fallback",
        "served_by": "fallback:onnx",
        "degraded": True,
        "feature_source": "none",
        "input_warnings": [],  # every value is one the models saw in training
    }
    assert "x-gateway-input-warnings" not in response.headers
    assert body["model_version"] == "fallback"
    assert len(body["predictions"]) == 2
    assert body["predictions"][0]["label"] in ("legit", "fraud")


class BrokenSession:
    """An onnxruntime session whose every run fails as onnxruntime's own errors do."""

    def run(self, *args: object) -> None:
        raise ort_errors.Fail("exploded")


def test_a_broken_fallback_falls_to_the_default(
    with_fallback: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = with_fallback.app.state.gateway.runtime.models["fraud"]

    monkeypatch.setattr(model.fallback, "_session", BrokenSession())
    response = infer(with_fallback.url)
    assert response.status_code == 200
    assert response.headers["x-gateway-variant"] == "default"
    assert response.headers["x-gateway-served-by"] == "fallback:default"
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs == {"probabilities": [0.95, 0.05], "label": [0]}
    registry = with_fallback.app.state.gateway.metrics.registry
    assert metric(registry, "gateway_served_by_total", model="fraud", rung="default") == 1


def test_when_every_rung_fails_the_503_says_why_for_each(
    tmp_path: Path, dead_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for thread in gateway(tmp_path, dead_upstream, FAST + FALLBACK):
        model = thread.app.state.gateway.runtime.models["fraud"]

        monkeypatch.setattr(model.fallback, "_session", BrokenSession())
        response = infer(thread.url)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error.startswith("model 'fraud' cannot be served: fraud-v1: ")
        assert "fallback:onnx: onnxruntime: exploded" in error
        assert error.endswith("fallback:default: not configured")


def test_without_lower_rungs_the_upstream_error_stays(tmp_path: Path, dead_upstream: str) -> None:
    for thread in gateway(tmp_path, dead_upstream, ""):
        response = infer(thread.url)
        assert response.status_code == 503
        assert "fraud-v1" in response.json()["error"]
        ready = httpx.get(f"{thread.url}/v2/health/ready")
        assert ready.status_code == 503


def test_ready_while_any_rung_can_serve(with_fallback: GatewayThread) -> None:
    assert httpx.get(f"{with_fallback.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{with_fallback.url}/v2/models/fraud/ready").json()["ready"] is True


def test_admin_status_says_why_the_model_is_degraded(with_fallback: GatewayThread) -> None:
    for _ in range(3):
        infer(with_fallback.url)
    status = admin_status(with_fallback.url)
    assert status["degraded"] is True
    assert status["serving_rungs"] == ["fallback", "default"]
    assert status["why"] == ["breaker open: 2 consecutive failures"]
    assert "fraud-v1" in status["primary"]["last_failure"]
    assert status["default"] == {"score": 0.05, "label": "legit"}


def test_admin_needs_the_bearer_token(with_fallback: GatewayThread) -> None:
    url = f"{with_fallback.url}/admin/status"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_admin_is_disabled_without_a_token(
    tmp_path: Path, dead_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_ADMIN_TOKEN")
    for thread in gateway(tmp_path, dead_upstream, FALLBACK):
        response = httpx.get(f"{thread.url}/admin/status", headers={"authorization": "Bearer x"})
        assert response.status_code == 403
        assert "GATEWAY_ADMIN_TOKEN" in response.json()["error"]


def test_a_bad_client_deadline_is_refused(with_fallback: GatewayThread) -> None:
    response = infer(with_fallback.url, **{"x-request-timeout-ms": "soon"})
    assert response.status_code == 400
    assert "x-request-timeout-ms" in response.json()["error"]


def test_breaker_moves_are_span_events_and_metrics(with_fallback: GatewayThread) -> None:
    for _ in range(3):
        infer(with_fallback.url)
    events = [
        dict(event.attributes or {})
        for span in with_fallback.exporter.get_finished_spans()
        for event in span.events
        if event.name == "gateway.breaker.state_change"
    ]
    assert events == [
        {
            "breaker": "fraud/fraud-v1",
            "from": "closed",
            "to": "open",
            "reason": "2 consecutive failures",
        }
    ]
    registry = with_fallback.app.state.gateway.metrics.registry
    labels = {"model": "fraud", "upstream": "fraud-v1"}
    assert metric(registry, "gateway_upstream_breaker_state", **labels) == 2
    assert (
        metric(registry, "gateway_upstream_breaker_transitions_total", state="open", **labels) == 1
    )


def test_a_fallback_run_in_a_thread_serves_too(tmp_path: Path, dead_upstream: str) -> None:
    threaded = FALLBACK.replace("}\n", ", run_in_thread: true}\n")
    for thread in gateway(tmp_path, dead_upstream, FAST + threaded):
        assert thread.app.state.gateway.runtime.models["fraud"].fallback.run_in_thread
        response = infer(thread.url)
        assert response.status_code == 200
        assert response.headers["x-gateway-served-by"] == "fallback:onnx"
