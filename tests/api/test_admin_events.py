"""``/admin/status``: recent events (breaker moves, reloads, canary weights), request counters
and the feature store's part, over the app in-process (the upstreams are ports nobody
listens on: connection refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelserver.support import TestClient
from support import MODELS, free_port

from gateway.app import create_app
from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.settings import load_config

TOKEN = "events-test-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
BODY = sample_infer_request(load_card(MODELS / "fraud-v1"), "events")


def config_text(weight: float) -> str:
    dead = f"http://127.0.0.1:{free_port()}"
    return (
        "server: {reload: {watch: false}}\n"
        "models:\n  fraud:\n"
        f"    card: {MODELS / 'fraud-v1'}\n"
        f"    primary: {{name: fraud-v1, url: '{dead}', timeout_ms: 500}}\n"
        f"    canary: {{name: fraud-v2, url: '{dead}', weight: {weight}, timeout_ms: 500}}\n"
        "    breaker: {consecutive_failures: 2, reset_timeout_seconds: 60}\n"
        "    retries: {max_attempts: 1}\n"
        "    default_response: {score: 0.05}\n"
    )


def status(client: TestClient) -> dict[str, Any]:
    response = client.get("/admin/status", headers=ADMIN)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_status_shows_breaker_moves_reloads_and_canary_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(weight=0))
    with TestClient(create_app(load_config(path))) as client:
        assert status(client)["events"] == []
        for _ in range(3):
            answer = client.post("/v2/models/fraud/infer", json=BODY)
            assert answer.headers["x-gateway-variant"] == "default", answer.text

        first = status(client)
        [opened] = first["events"]
        assert opened["kind"] == "breaker" and opened["model"] == "fraud"
        assert opened["detail"] == "fraud-v1: closed -> open (2 consecutive failures)"
        assert isinstance(opened["at"], float)
        fraud = first["models"]["fraud"]
        assert fraud["traffic"] == {"requests": {"ok": 3}, "served_by": {"default": 3}}
        assert first["feature_store"] is None

        path.write_text(config_text(weight=25))
        assert client.post("/admin/reload", headers=ADMIN).status_code == 200
        path.write_text("models: {")
        assert client.post("/admin/reload", headers=ADMIN).status_code == 422

        events = status(client)["events"]
    assert [(e["kind"], e["model"]) for e in events] == [
        ("breaker", "fraud"), ("canary", "fraud"), ("reload", None), ("reload", None)
    ]  # fmt: skip
    assert events[1]["detail"] == "fraud-v2: weight 0% -> 25%"
    assert events[2]["detail"] == "applied (admin)"
    assert events[3]["detail"].startswith("refused (admin): ")
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)  # newest last


def test_status_shows_the_feature_store_and_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    path = tmp_path / "gateway.yaml"
    store = f"http://127.0.0.1:{free_port()}"
    path.write_text(
        f"feature_store: {{url: '{store}', timeout_ms: 200}}\n"
        + config_text(weight=0).replace("server: {reload: {watch: false}}\n", "")
    )
    instance = {"customer_id": "c-0001", "amount": 12.5, "merchant_category": "grocery",
                "hour": 9, "is_foreign": False}  # fmt: skip
    with TestClient(create_app(load_config(path))) as client:
        answer = client.post("/v1/models/fraud:predict", json={"instances": [instance]})
        assert answer.status_code == 200, answer.text
        feature_store = status(client)["feature_store"]
    assert feature_store["url"] == store
    assert feature_store["breaker"]["state"] == "closed"
    assert feature_store["cache"]["entries"] == 0
    # The store is down: four features missed the cache and were served as defaults.
    assert feature_store["cache_lookups"] == {"hit": 0, "miss": 4, "expired": 0}
    assert feature_store["values_served"] == {"live": 0, "cache": 0, "defaults": 4}
    # Refused at once: nothing to hedge; one more try of the dropped connection.
    assert feature_store["hedges"] == {"sent": 0, "over_budget": 0}
    assert feature_store["retries"] == 1
