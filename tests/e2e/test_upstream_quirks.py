"""The gateway against an OIP upstream that behaves as real servers do, over real HTTP.

A small aiohttp upstream records what it was sent and answers as told: refusals (4xx) that
are the client's fault, errors that are its own, per-model readiness. The gateway runs on
uvicorn in a thread with an in-memory span exporter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from fakes import fraud_answer
from local_http import serving_in_thread
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from support import MODELS, GatewayThread, write_config

from gateway.settings import load_config
from gateway.telemetry.tracing import traceparent

pytestmark = pytest.mark.e2e

CARD = orjson.loads((MODELS / "fraud-v1" / "model-card.json").read_bytes())
ROW = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
       "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
       "hour": 14, "is_foreign": False}  # fmt: skip


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": [
        {"name": spec["name"], "datatype": spec["datatype"], "shape": [len(rows), 1],
         "data": [float(r[spec["name"]]) if spec["datatype"].startswith("FP")
                  else r[spec["name"]] for r in rows]}
        for spec in CARD["inputs"]
    ]}  # fmt: skip


@dataclass
class FakeUpstream:
    """What the fake upstream answers, and what it saw."""

    url: str = ""
    status: int = 200
    error: str = ""
    serves: str = "fraud"  # the one model name it is ready for
    headers: list[dict[str, str]] = field(default_factory=list)
    ready_probes: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def infer(request: web.Request) -> web.Response:
            self.headers.append(dict(request.headers))
            if self.status != 200:
                return web.json_response({"error": self.error}, status=self.status)
            doc = orjson.loads(await request.read())
            batch = doc["inputs"][0]["shape"][0]
            return web.Response(body=fraud_answer(batch), content_type="application/json")

        async def model_ready(request: web.Request) -> web.Response:
            self.ready_probes.append(request.path)
            name = request.match_info["name"]
            if name != self.serves:
                return web.json_response({"error": f"Model {name} not found"}, status=404)
            return web.json_response({"name": name, "ready": True})

        async def server_ready(request: web.Request) -> web.Response:
            return web.json_response({"ready": True})  # up, whatever it serves

        app = web.Application()
        app.router.add_post("/v2/models/{name}/infer", infer)
        app.router.add_post("/v2/models/{name}/versions/{v}/infer", infer)
        app.router.add_get("/v2/models/{name}/ready", model_ready)
        app.router.add_get("/v2/models/{name}/versions/{v}/ready", model_ready)
        app.router.add_get("/v2/health/ready", server_ready)
        return app


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    with serving_in_thread(fake.app()) as url:
        fake.url = url
        yield fake


def gateway(tmp_path: Path, upstream: FakeUpstream, extra: str = "") -> GatewayThread:
    config = load_config(write_config(tmp_path, upstream.url, extra))
    return GatewayThread(config, InMemorySpanExporter())


def breaker_state(gw: GatewayThread) -> float:
    text = httpx.get(f"{gw.url}/metrics").text
    found = re.search(
        r'gateway_upstream_breaker_state\{model="fraud",upstream="fraud-v1"\} (\S+)', text
    )
    assert found is not None
    return float(found.group(1))


# --- client-caused failures never count against the upstream ----------------------------


def test_a_client_cannot_open_a_breaker_with_requests_the_upstream_refuses(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.error = "input 'amount': unexpected shape [1, 1]"
    answers: dict[int, list[httpx.Response]] = {}
    with gateway(tmp_path, upstream) as gw, httpx.Client() as client:
        for status in (400, 422, 413):  # the default breaker opens on 5 consecutive failures
            upstream.status = status
            answers[status] = [client.post(f"{gw.url}/v2/models/fraud/infer",
                                           json=v2_body([ROW])) for _ in range(20)]  # fmt: skip
        assert len(upstream.headers) == 60  # every one reached the upstream: none refused
        assert breaker_state(gw) == 0  # closed
    for status, answered in ((400, 400), (422, 400), (413, 413)):
        assert {a.status_code for a in answers[status]} == {answered}
        assert answers[status][-1].json()["error"] == (
            f"model server 'fraud-v1' refused the request (HTTP {status}): "
            "input 'amount': unexpected shape [1, 1]"
        )


def test_the_upstreams_own_failures_do_open_it(tmp_path: Path, upstream: FakeUpstream) -> None:
    # 404: the upstream does not serve the configured model name (the config's mistake).
    upstream.status, upstream.error = 404, "Model fraud not found"
    with gateway(tmp_path, upstream) as gw, httpx.Client() as client:
        answers = [client.post(f"{gw.url}/v2/models/fraud/infer", json=v2_body([ROW]))
                   for _ in range(6)]  # fmt: skip
        assert breaker_state(gw) == 2  # open
    assert [a.status_code for a in answers] == [502] * 5 + [503]


# --- readiness per model -----------------------------------------------------------------


def test_readiness_asks_the_upstream_for_the_configured_model(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    wrong = '    primary: {name: fraud-v1, url: "%s", model_name: frod, model_version: "7"}\n'
    (tmp_path / "wrong").mkdir()
    with gateway(tmp_path / "wrong", upstream, "") as gw:
        assert httpx.get(f"{gw.url}/v2/models/fraud/ready").status_code == 200
        assert httpx.get(f"{gw.url}/v2/health/ready").status_code == 200  # cached: no probe
    assert upstream.ready_probes == ["/v2/models/fraud/ready"]
    upstream.ready_probes.clear()
    config = write_config(tmp_path, upstream.url).read_text()
    primary = f'    primary: {{name: fraud-v1, url: "{upstream.url}", timeout_ms: 2000}}\n'
    (tmp_path / "gateway.yaml").write_text(config.replace(primary, wrong % upstream.url))
    with GatewayThread(load_config(tmp_path / "gateway.yaml"), InMemorySpanExporter()) as gw:
        model = httpx.get(f"{gw.url}/v2/models/fraud/ready")
        server = httpx.get(f"{gw.url}/v2/health/ready")
    assert model.status_code == 503 and model.json() == {"name": "fraud", "ready": False}
    assert server.status_code == 503 and server.json()["not_ready"] == ["fraud"]
    assert upstream.ready_probes == ["/v2/models/frod/versions/7/ready"]


# --- trace context -----------------------------------------------------------------------


def test_tracing_off_and_no_incoming_context_sends_no_trace_context(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with gateway(tmp_path, upstream) as gw:
        response = httpx.post(f"{gw.url}/v2/models/fraud/infer", json=v2_body([ROW]))
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        incoming = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "tracestate": "k=v"}
        continued = httpx.post(
            f"{gw.url}/v2/models/fraud/infer", json=v2_body([ROW]), headers=incoming
        )
    assert response.status_code == 200
    assert "traceparent" not in response.headers  # never the all-zero context
    assert "traceparent" not in upstream.headers[0] and "tracestate" not in upstream.headers[0]
    # Tracing off still passes an incoming trace on, unchanged.
    assert upstream.headers[1]["traceparent"] == incoming["traceparent"]
    assert upstream.headers[1]["tracestate"] == "k=v"
    assert continued.headers["traceparent"] == incoming["traceparent"]


def test_spans_follow_the_http_conventions_and_tracestate_is_forwarded(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    trace_id = "5bf92f3577b34da6a3ce929d0e0e4737"
    incoming = {"traceparent": f"00-{trace_id}-10f067aa0ba902b8-01",
                "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}  # fmt: skip
    with gateway(tmp_path, upstream) as gw:
        version = httpx.get(f"{gw.url}/v2/models/fraud").json()["versions"][0]
        response = httpx.post(
            f"{gw.url}/v2/models/fraud/versions/{version}/infer",
            json=v2_body([ROW]),
            headers=incoming,
        )
        v1 = httpx.post(f"{gw.url}/v1/models/fraud:predict", json={"instances": [ROW]})
        spans = gw.exporter.get_finished_spans()
    assert response.status_code == 200 and v1.status_code == 200
    sent = upstream.headers[0]
    assert sent["tracestate"] == incoming["tracestate"]
    assert sent["traceparent"].startswith(f"00-{trace_id}-")
    server = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [dict(s.attributes or {})["http.route"] for s in server] == [
        "/v2/models/{model}/versions/{version}/infer",
        "/v1/models/{model}:predict",
    ]
    client = next(s for s in spans if s.kind is SpanKind.CLIENT)
    attributes: dict[str, Any] = dict(client.attributes or {})
    port = int(upstream.url.rpartition(":")[2])
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == port


def test_a_shadow_call_is_a_linked_span_with_its_own_context(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    shadow = FakeUpstream()
    with serving_in_thread(shadow.app()) as shadow_url:
        extra = (f'    shadows: [{{name: fraud-v3, url: "{shadow_url}", '
                 "sample_percent: 100}]\n")  # fmt: skip
        with gateway(tmp_path, upstream, extra) as gw:
            response = httpx.post(f"{gw.url}/v2/models/fraud/infer", json=v2_body([ROW]))
            for _ in range(200):  # the shadow call is off the response path
                if any(s.name == "shadow fraud-v3" for s in gw.exporter.get_finished_spans()):
                    break
                httpx.get(f"{gw.url}/v2/health/live")
            spans = {s.name: s for s in gw.exporter.get_finished_spans()}
    assert response.status_code == 200
    request, call = spans["POST /v2/models/{model}/infer"], spans["shadow fraud-v3"]
    assert call.kind is SpanKind.CLIENT and call.parent is None
    assert call.context.trace_id != request.context.trace_id
    assert [link.context.span_id for link in call.links] == [request.context.span_id]
    assert shadow.headers[0]["traceparent"] == traceparent(call.context)
