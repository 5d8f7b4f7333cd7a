"""The gateway in front of a real model-server process, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support import MODELS, GatewayThread, ModelServer, free_port, write_config

from gateway.settings import load_config

pytestmark = pytest.mark.e2e

CARD = json.loads((MODELS / "fraud-v1" / "model-card.json").read_text())
ROW = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
       "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
       "hour": 14, "is_foreign": False}  # fmt: skip
ROW2 = ROW | {"amount": 2400.0, "merchant_category": "electronics", "hour": 3, "is_foreign": True,
              "chargeback_rate_90d": 0.2}  # fmt: skip


def v2_body(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    inputs = []
    for spec in CARD["inputs"]:
        values = [row[spec["name"]] for row in rows]
        if spec["datatype"].startswith("FP"):
            values = [float(v) for v in values]
        inputs.append({"name": spec["name"], "datatype": spec["datatype"],
                       "shape": [len(rows), 1], "data": values})  # fmt: skip
    return {"inputs": inputs, **extra}


def upstream_stats(server: ModelServer) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{server.url}/_debug/stats").json()
    return stats


def test_v2_infer_through_the_gateway_equals_the_model_server(
    gateway: GatewayThread, model_server: ModelServer
) -> None:
    body = v2_body([ROW, ROW2], id="req-7")
    direct = httpx.post(f"{model_server.url}/v2/models/fraud/infer", json=body).json()
    response = httpx.post(f"{gateway.url}/v2/models/fraud/infer", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["outputs"] == direct["outputs"]
    assert answer["id"] == "req-7"
    assert answer["model_name"] == "fraud"
    assert (
        answer["parameters"].items()
        >= {
            "gateway_variant": "primary",
            "gateway_served_by": "fraud-v1",
            "gateway_degraded": False,
            "gateway_feature_source": "none",
        }.items()
    )
    assert response.headers["x-gateway-variant"] == "primary"
    assert response.headers["x-gateway-served-by"] == "fraud-v1"
    assert response.headers["x-gateway-degraded"] == "false"
    assert response.headers["x-gateway-feature-source"] == "none"
    assert response.headers["traceparent"].startswith("00-")


def test_versioned_path_and_unknown_version(gateway: GatewayThread) -> None:
    version = CARD["version"]
    ok = httpx.post(f"{gateway.url}/v2/models/fraud/versions/{version}/infer", json=v2_body([ROW]))
    assert ok.status_code == 200
    missing = httpx.post(f"{gateway.url}/v2/models/fraud/versions/99/infer", json=v2_body([ROW]))
    assert missing.status_code == 404
    assert "no version '99'" in missing.json()["error"]


def test_v1_predict_scores_match_the_model(
    gateway: GatewayThread, model_server: ModelServer
) -> None:
    direct = httpx.post(
        f"{model_server.url}/v2/models/fraud/infer", json=v2_body([ROW, ROW2])
    ).json()
    probabilities = next(o for o in direct["outputs"] if o["name"] == "probabilities")["data"]
    instances = [ROW | {"customer_id": "c-0042"}, ROW2 | {"customer_id": "c-0043"}]
    response = httpx.post(f"{gateway.url}/v1/models/fraud:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["score"] for p in body["predictions"]] == pytest.approx(probabilities[1::2])
    assert all(p["label"] in ("legit", "fraud") for p in body["predictions"])
    assert body["provenance"] == {"variant": "primary", "served_by": "fraud-v1",
                                  "degraded": False, "feature_source": "none",
                                  "input_warnings": []}  # fmt: skip
    assert response.headers["x-gateway-variant"] == "primary"
    assert "x-gateway-input-warnings" not in response.headers  # both rows are usual


def test_traceparent_reaches_the_upstream_and_spans_link(
    gateway: GatewayThread, model_server: ModelServer
) -> None:
    gateway.exporter.clear()
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = httpx.post(
        f"{gateway.url}/v2/models/fraud/infer",
        json=v2_body([ROW]),
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert response.status_code == 200
    sent = upstream_stats(model_server)["last_headers"]["traceparent"]
    spans = {s.name: s for s in gateway.exporter.get_finished_spans()}
    server, client = spans["POST /v2/models/{model}/infer"], spans["infer fraud-v1"]
    assert server.kind is SpanKind.SERVER and client.kind is SpanKind.CLIENT
    assert server.context.trace_id == client.context.trace_id == int(trace_id, 16)
    assert server.parent is not None and server.parent.span_id == int(caller_span, 16)
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert sent == f"00-{trace_id}-{client.context.span_id:016x}-01"
    assert response.headers["traceparent"] == f"00-{trace_id}-{server.context.span_id:016x}-01"
    assert server.attributes is not None and server.attributes["gateway.batch_size"] == 1


def test_an_unsampled_callers_trace_continues_upstream_with_nothing_recorded(
    gateway: GatewayThread, model_server: ModelServer
) -> None:
    gateway.exporter.clear()
    trace_id, caller_span = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
    response = httpx.post(
        f"{gateway.url}/v2/models/fraud/infer",
        json=v2_body([ROW]),
        headers={"traceparent": f"00-{trace_id}-{caller_span}-00"},
    )
    assert response.status_code == 200
    sent = upstream_stats(model_server)["last_headers"]["traceparent"]
    assert sent.startswith(f"00-{trace_id}-") and sent.endswith("-00")
    assert response.headers["traceparent"].startswith(f"00-{trace_id}-")
    assert gateway.exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v2/models/nope/infer", b"{}", 404, "unknown model 'nope'"),
        ("POST", "/v2/models/fraud/infer", b"{not json", 400, "body: not valid JSON"),
        ("POST", "/v2/models/fraud/infer", b'{"inputs": []}', 400, "inputs: required"),
        ("POST", "/v2/models/fraud/infer", b"x" * 70000, 413, "exceeds the limit of 65536 bytes"),
        ("POST", "/v1/models/fraud:predict", b'{"instances": [{"amount": "a lot"}]}', 400, "instances[0].amount: must be a number"),
        ("POST", "/v1/models/nope:predict", b"{}", 404, "unknown model 'nope'"),
        ("GET", "/v2/models/fraud/infer", None, 405, "method GET is not allowed"),
        ("GET", "/nowhere", None, 404, "no such endpoint: GET /nowhere"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_clear_error_and_reach_no_upstream(
    gateway: GatewayThread, model_server: ModelServer,
    method: str, path: str, body: bytes | None, status: int, message: str,
) -> None:  # fmt: skip
    before = upstream_stats(model_server)["infer_requests"]
    response = httpx.request(method, gateway.url + path, content=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert upstream_stats(model_server)["infer_requests"] == before


def test_metadata_health_and_metrics(gateway: GatewayThread) -> None:
    assert httpx.get(f"{gateway.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{gateway.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{gateway.url}/v2/models/fraud/ready").json() == {
        "name": "fraud",
        "ready": True,
    }
    assert httpx.get(f"{gateway.url}/v2").json()["name"] == "gateway"
    metadata = httpx.get(f"{gateway.url}/v2/models/fraud").json()
    assert [i["name"] for i in metadata["inputs"]] == [i["name"] for i in CARD["inputs"]]
    assert metadata["versions"] == [CARD["version"]]
    httpx.post(f"{gateway.url}/v2/models/fraud/infer", json=v2_body([ROW]))
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'gateway_requests_total{api="v2",model="fraud",outcome="ok"}' in text
    assert (
        'gateway_upstream_duration_seconds_count{model="fraud",outcome="ok",upstream="fraud-v1"}'
        in text
    )


def test_a_dead_upstream_is_a_clear_503(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, f"http://127.0.0.1:{free_port()}"))
    with GatewayThread(config, InMemorySpanExporter()) as gw:
        response = httpx.post(f"{gw.url}/v2/models/fraud/infer", json=v2_body([ROW]))
        ready = httpx.get(f"{gw.url}/v2/health/ready")
    assert response.status_code == 503
    # No library internals (ClientConnectorError ... ssl:default) in the client's answer.
    assert response.json()["error"] == "upstream 'fraud-v1': unreachable: connection refused"
    assert ready.status_code == 503 and ready.json()["not_ready"] == ["fraud"]
