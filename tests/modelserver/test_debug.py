"""/_debug/stats: what the server received (test instrumentation, not OIP)."""

from __future__ import annotations

from pathlib import Path

from gateway.modelserver import create_app

from .support import TestClient, scoring_request

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_stats_start_empty(client: TestClient) -> None:
    assert client.get("/_debug/stats").json() == {"infer_requests": 0, "last_headers": {}}


def test_stats_count_infer_requests_and_keep_the_last_headers(client: TestClient) -> None:
    client.post("/v2/models/fraud/infer", json=scoring_request())
    client.post(
        "/v2/models/fraud/infer",
        json=scoring_request(),
        headers={"TraceParent": TRACEPARENT, "X-Gateway-Variant": "canary"},
    )
    stats = client.get("/_debug/stats").json()
    assert stats["infer_requests"] == 2
    assert stats["last_headers"]["traceparent"] == TRACEPARENT
    assert stats["last_headers"]["x-gateway-variant"] == "canary"
    assert all(name == name.lower() for name in stats["last_headers"])


def test_every_infer_request_counts_even_a_failed_one(client: TestClient) -> None:
    client.post("/v2/models/fraud/infer", content=b"not json")
    client.post("/v2/models/other/infer", json=scoring_request())
    assert client.get("/_debug/stats").json()["infer_requests"] == 2


def test_other_requests_do_not_count(client: TestClient) -> None:
    client.get("/v2/models/fraud")
    client.get("/v2/health/ready")
    client.get("/_debug/stats")
    assert client.get("/_debug/stats").json()["infer_requests"] == 0


def test_repeated_headers_are_joined(client: TestClient) -> None:
    client.post(
        "/v2/models/fraud/infer",
        json=scoring_request(),
        headers=[("x-tag", "a"), ("x-tag", "b")],
    )
    assert client.get("/_debug/stats").json()["last_headers"]["x-tag"] == "a, b"


def test_debug_endpoints_can_be_switched_off(model_dir: Path) -> None:
    with TestClient(create_app(model_dir, debug_endpoints=False)) as client:
        assert client.get("/_debug/stats").status_code == 404
        assert client.post("/_debug/fault", json={"mode": "error"}).status_code == 404
        assert client.post("/v2/models/fraud/infer", json=scoring_request()).status_code == 200
