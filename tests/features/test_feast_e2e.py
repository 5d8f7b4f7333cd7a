"""The gateway enriching v1 requests from a real ``feast serve``, in good times and bad."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest
from contract_samples import REQUEST_FIELDS, v1_entity_doc, v2_entity_doc
from feast_support import Feast, Relay, serve_feast
from ladder_support import FALLBACK_SHA256
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, ModelServer, free_port

from gateway.app import Seams
from gateway.contracts.card import load_card
from gateway.demo.data import customer_stats
from gateway.errors import FeatureStoreBadResponse
from gateway.features.feast_client import FeastClient
from gateway.settings import load_config

pytestmark = pytest.mark.e2e

CARD = load_card(MODELS / "fraud-v1")
STATS = customer_stats().set_index("customer_id")


class OffsetClock:
    """The wall clock, moved forward by ``offset`` seconds when a test needs time to pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def write_enrichment_config(
    folder: Path,
    upstream: str,
    store: str,
    *,
    timeout_ms: int = 1000,
    features: str = "",
    strict_extra: str = "",
) -> Path:
    """Two models over the same card: ``fraud`` may use defaults, ``strict`` may not.

    ``strict_extra`` adds lines under ``models.strict`` (indented four spaces).
    """
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
telemetry: {{sampling_ratio: 1.0}}
feature_store:
  url: "{store}"
  timeout_ms: {timeout_ms}
  breaker: {{fail_max: 2, reset_timeout_seconds: 0.5, half_open_max_calls: 1}}
  cache: {{max_entries: 1000}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", timeout_ms: 2000}}
    features: {{max_age_seconds: 3600, on_missing: defaults {features}}}
  strict:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", model_name: fraud, timeout_ms: 2000}}
    features: {{max_age_seconds: 3600, on_missing: unavailable {features}}}
{strict_extra}"""
    )
    return path


def start_gateway(path: Path, clock: OffsetClock | None = None) -> GatewayThread:
    seams = Seams(wall_clock=clock or OffsetClock())
    return GatewayThread(load_config(path), InMemorySpanExporter(), seams)


def predict(gateway: GatewayThread, customers: list[str], model: str = "fraud") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/models/{model}:predict", json=v1_entity_doc(customers), timeout=10
    )


def metric(gateway: GatewayThread, line_start: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def recorded(model_server: ModelServer) -> Iterator[Relay]:
    with Relay(model_server.url) as relay:
        yield relay


@pytest.fixture(scope="module")
def live_gateway(
    feast: Feast, recorded: Relay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    path = write_enrichment_config(tmp_path_factory.mktemp("gw"), recorded.url, feast.url)
    with start_gateway(path) as gateway:
        yield gateway


def test_the_tensor_sent_upstream_is_feast_plus_request_fields_in_card_order(
    live_gateway: GatewayThread, recorded: Relay
) -> None:
    response = predict(live_gateway, ["c-0042", "c-9999"])
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-feature-source"] == "live"
    assert response.headers["x-gateway-degraded"] == "false"
    body = response.json()
    assert body["provenance"]["feature_source"] == "live"
    for instance in body["provenance"]["features"]:
        assert set(instance["sources"].values()) == {"live"}
        assert 0 <= instance["oldest_feature_age_seconds"] < 3600
    sent = orjson.loads(recorded.bodies[-1])["inputs"]
    assert [i["name"] for i in sent] == [i.name for i in CARD.inputs]
    for tensor, spec in zip(sent, CARD.inputs, strict=True):
        if spec.source == "feature":
            expected = [STATS.loc[c, spec.name].item() for c in ("c-0042", "c-9999")]
        else:
            expected = [REQUEST_FIELDS[spec.name]] * 2
        if spec.datatype.startswith("FP"):
            expected = [float(v) for v in expected]
        assert tensor == {"name": spec.name, "datatype": spec.datatype, "shape": [2, 1],
                          "data": expected}  # fmt: skip
    spans = [s for s in live_gateway.exporter.get_finished_spans() if s.name.startswith("feast")]
    assert spans and spans[-1].attributes is not None
    assert spans[-1].attributes["gateway.feature_store.entity_count"] == 2


def test_a_feature_value_sent_by_the_client_is_refused(live_gateway: GatewayThread) -> None:
    instance = {"customer_id": "c-0042", **REQUEST_FIELDS, "avg_amount_30d": 1.0}
    response = httpx.post(
        f"{live_gateway.url}/v1/models/fraud:predict", json={"instances": [instance]}
    )
    assert response.status_code == 400
    assert "unknown field(s) ['avg_amount_30d']" in response.json()["error"]


def test_unknown_and_known_entities_in_one_batch(live_gateway: GatewayThread) -> None:
    response = predict(live_gateway, ["c-0042", "c-nope", "c-0042"])
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-feature-source"] == "defaults"
    assert response.headers["x-gateway-degraded"] == "true"
    features = response.json()["provenance"]["features"]
    assert [f["feature_source"] for f in features] == ["live", "defaults", "live"]
    assert features[1]["oldest_feature_age_seconds"] is None

    strict = predict(live_gateway, ["c-0042", "c-nope"], model="strict")
    assert strict.status_code == 503
    assert "customer_id 'c-nope' is missing in the store" in strict.json()["error"]


def test_an_unknown_feature_ref_is_a_store_error_served_by_defaults(
    feast: Feast, recorded: Relay, tmp_path: Path
) -> None:
    features = ', feature_refs: {avg_amount_30d: "customer_stats:nope"}'
    path = write_enrichment_config(tmp_path, recorded.url, feast.url, features=features)
    with start_gateway(path) as gateway:
        response = predict(gateway, ["c-0042"])
        outcome = 'gateway_feature_store_requests_total{outcome="feature_store_bad_response"}'
        errors = metric(gateway, outcome)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-feature-source"] == "defaults"
    assert errors == 1

    async def direct() -> None:
        async with aiohttp.ClientSession() as session:
            client = FeastClient(session, feast.url, 5.0)
            with pytest.raises(FeatureStoreBadResponse) as caught:
                await client.online_features(["customer_stats:nope"], "customer_id", ["c-0042"])
        assert caught.value.message.endswith(
            "HTTP 500: Feature nope not found in projection customer_stats"
        )

    asyncio.run(direct())


def test_a_slow_store_trips_the_timeout_and_the_cache_answers(
    feast: Feast, recorded: Relay, tmp_path: Path
) -> None:
    with Relay(feast.url) as slow:
        path = write_enrichment_config(tmp_path, recorded.url, slow.url, timeout_ms=150)
        with start_gateway(path) as gateway:
            assert predict(gateway, ["c-0042"]).headers["x-gateway-feature-source"] == "live"
            slow.delay = 1.5
            started = time.perf_counter()
            response = predict(gateway, ["c-0042"])
            elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-feature-source"] == "cache"
    assert elapsed < 0.150 + 0.2, elapsed


@pytest.mark.slow
def test_a_store_outage_is_served_from_cache_then_defaults_and_live_returns(
    feast_repo: Path, recorded: Relay, tmp_path: Path
) -> None:
    port = free_port()
    clock = OffsetClock()
    path = write_enrichment_config(tmp_path, recorded.url, f"http://127.0.0.1:{port}")
    with start_gateway(path, clock) as gateway:
        with serve_feast(feast_repo, port) as store:
            assert predict(gateway, ["c-0042"]).headers["x-gateway-feature-source"] == "live"
            del store
        # The store is gone: the cache answers, and after fail_max failures the breaker opens.
        for _ in range(3):
            response = predict(gateway, ["c-0042"])
            assert response.status_code == 200, response.text
            assert response.headers["x-gateway-feature-source"] == "cache"
            assert response.headers["x-gateway-degraded"] == "true"
        assert metric(gateway, "gateway_feature_store_breaker_state ") == 2
        assert predict(gateway, ["c-0042"], "strict").headers["x-gateway-feature-source"] == "cache"
        # Past the max age the cached values may not be used any more.
        clock.offset = 2 * 3600
        aged = predict(gateway, ["c-0042"])
        assert aged.status_code == 200 and aged.headers["x-gateway-feature-source"] == "defaults"
        refused = predict(gateway, ["c-0042"], "strict")
        assert refused.status_code == 503
        assert "no fresh cached value within 3600 s" in refused.json()["error"]
        clock.offset = 0
        # The store comes back: the next trial (after the reset timeout) closes the breaker.
        with serve_feast(feast_repo, port):
            time.sleep(0.6)
            back = predict(gateway, ["c-0042"])
            assert back.headers["x-gateway-feature-source"] == "live", back.text
            assert metric(gateway, "gateway_feature_store_breaker_state ") == 0
            assert metric(gateway, "gateway_feature_store_skipped_total") >= 1


def test_a_v2_request_may_name_its_entities_in_parameters(
    live_gateway: GatewayThread, recorded: Relay
) -> None:
    body = {"id": "e-1", **v2_entity_doc(["c-0042", "c-9999"])}
    inputs = body["inputs"]
    response = httpx.post(f"{live_gateway.url}/v2/models/fraud/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-feature-source"] == "live"
    assert response.json()["parameters"]["gateway_feature_source"] == "live"
    sent = {t["name"]: t for t in orjson.loads(recorded.bodies[-1])["inputs"]}
    assert sent["txn_count_7d"]["data"] == [
        STATS.loc[c, "txn_count_7d"].item() for c in ("c-0042", "c-9999")
    ]

    clash = body | {
        "inputs": [
            *inputs,
            {"name": "txn_count_7d", "datatype": "INT64", "shape": [2, 1], "data": [1, 2]},
        ]
    }
    refused = httpx.post(f"{live_gateway.url}/v2/models/fraud/infer", json=clash)
    assert refused.status_code == 400
    assert (
        "come from the feature store when parameters name the customer_id"
        in refused.json()["error"]
    )

    unnamed = httpx.post(f"{live_gateway.url}/v2/models/fraud/infer", json={"inputs": inputs})
    assert unnamed.status_code == 400  # without entities every tensor must be sent
    assert "avg_amount_30d" in unnamed.json()["error"]


def test_with_the_store_down_both_apis_fall_to_the_fallback_model(
    recorded: Relay, tmp_path: Path
) -> None:
    """An entity never seen, no store: no live, cached or allowed default value. The
    upstream cannot be used, and v2 goes down the ladder exactly as v1 does."""
    fallback = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"
    dead_store = f"http://127.0.0.1:{free_port()}"
    path = write_enrichment_config(tmp_path, recorded.url, dead_store, strict_extra=fallback)
    sent_before = len(recorded.bodies)
    with start_gateway(path) as gateway:
        v2 = httpx.post(
            f"{gateway.url}/v2/models/strict/infer",
            json=v2_entity_doc(["c-never-seen"]),
            timeout=10,
        )
        v1 = predict(gateway, ["c-never-seen"], model="strict")
    for response in (v2, v1):
        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-variant"] == "fallback"
        assert response.headers["x-gateway-served-by"] == "fallback:onnx"
        assert response.headers["x-gateway-degraded"] == "true"
    assert v2.json()["parameters"]["gateway_served_by"] == "fallback:onnx"
    assert v1.json()["provenance"]["served_by"] == "fallback:onnx"
    assert len(recorded.bodies) == sent_before  # the upstream was never called


def test_v2_entity_lists_are_checked_before_the_store_is_asked(
    feast: Feast, recorded: Relay, tmp_path: Path
) -> None:
    with Relay(feast.url) as store:
        path = write_enrichment_config(tmp_path, recorded.url, store.url)
        with start_gateway(path) as gateway:
            url = f"{gateway.url}/v2/models/fraud/infer"
            too_many = v2_entity_doc([f"c-{i:04d}" for i in range(257)])
            too_long = v2_entity_doc(["c-" + "9" * 300])
            wrong_count = v2_entity_doc(["c-0042"]) | {"parameters": {"customer_id": "c-1,c-2"}}
            answers = [httpx.post(url, json=body, timeout=10) for body in (too_many, too_long, wrong_count)]  # fmt: skip
            assert [a.status_code for a in answers] == [400, 400, 400]
            assert "names 257 entities; the maximum is 256" in answers[0].json()["error"]
            assert "the maximum is 256 (rule: max_string_length)" in answers[1].json()["error"]
            assert "names 2 entities for a batch of 1 rows" in answers[2].json()["error"]
            assert store.bodies == []  # refused before any lookup
            assert httpx.post(url, json=v2_entity_doc(["c-0042"]), timeout=10).status_code == 200
            assert len(store.bodies) == 1
