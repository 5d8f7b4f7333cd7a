"""The one prediction pipeline: v1 and v2 take the same steps, in the same order.

A real runtime for the fraud card, a fake feature store and a fake upstream transport
behind the seams the real parts use, on a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from contract_samples import v1_entity_doc, v2_entity_doc
from fakes import NOW, FakeClock, FakeStore, fraud_answer
from ladder_support import FALLBACK_SHA256
from opentelemetry.sdk.trace import TracerProvider
from quality_samples import typical_values
from support import MODELS

from gateway.contracts.card import load_card
from gateway.contracts.problems import ContractViolation
from gateway.errors import FeaturesUnavailable, GatewayError
from gateway.features.cache import LastKnownGood
from gateway.features.enrichment import Enricher
from gateway.resilience.breaker import CircuitBreaker
from gateway.routing.shadow import ShadowDispatcher
from gateway.service.ladder import Ladder
from gateway.service.pipeline import Prediction, PredictionCall, PredictionService
from gateway.service.runtime import Runtime, build_runtime
from gateway.settings import ConfigError, LoadedConfig, parse_config
from gateway.telemetry.feature_metrics import FeatureMetrics
from gateway.telemetry.ladder_metrics import LadderMetrics
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstream.client import Upstream

CARD = load_card(MODELS / "fraud-v1")
FEATURES = {"customer_stats:avg_amount_30d": 80.5, "customer_stats:txn_count_7d": 4,
            "customer_stats:chargeback_rate_90d": 0.01, "customer_stats:account_age_days": 700}  # fmt: skip
FALLBACK = f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n"
SHADOW = '    shadows: [{name: fraud-v3, url: "http://shadow.test", sample_percent: 100}]\n'


def config_text(extra: str = "") -> str:
    return f"""
feature_store: {{url: "http://store.test", timeout_ms: 500}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://upstream.test", timeout_ms: 2000}}
    timeouts: {{total_ms: 1000, per_try_ms: 300, fallback_reserve_ms: 50}}
    features: {{on_missing: unavailable}}
{extra}"""


class FakeUpstream:
    """The OIP transport: records what was sent, answers a valid score for every row."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], float]] = []  # (upstream, body, timeout)
        self.raw: list[bytes] = []

    async def __call__(
        self, upstream: Upstream, body: bytes, headers: Mapping[str, str], seconds: float
    ) -> bytes:
        doc = orjson.loads(body)
        self.raw.append(body)
        self.sent.append((upstream.name, doc, seconds))
        return fraud_answer(batch=doc["inputs"][0]["shape"][0], fraud=0.125)


class Stack:
    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.path = tmp_path / "gateway.yaml"
        self.clock = FakeClock(100.0)
        self.store = FakeStore()
        self.store.rows = {f"c-{i:04d}": (FEATURES, 60.0) for i in range(3)}
        self.upstream = FakeUpstream()
        self.metrics = GatewayMetrics()
        registry = self.metrics.registry
        self.ladder_metrics = LadderMetrics(registry)
        tracer = TracerProvider().get_tracer("test")
        self.tracer = tracer
        self.shadows = ShadowDispatcher(self.upstream)  # not started: offers stay queued
        self.service = PredictionService(
            self.runtime(parse_config(config_text(extra), self.path)),
            build_runtime=lambda config, previous: self.runtime(config, previous),
            ladder=Ladder(self.upstream, tracer, self.metrics, self.ladder_metrics, self.clock),
            enricher=Enricher(
                client=self.store,
                breaker=CircuitBreaker("feature_store", clock=self.clock),
                cache=LastKnownGood(100, 86_400, lambda: NOW),
                metrics=FeatureMetrics(registry),
                tracer=tracer,
                wall_clock=lambda: NOW,
                timer=self.clock,
            ),
            shadows=self.shadows,
            probe=self.probe,
            metrics=self.metrics,
            tracer=tracer,
            clock=self.clock,
        )

    def runtime(self, config: LoadedConfig, previous: Runtime | None = None) -> Runtime:
        return build_runtime(config, self.clock, self.ladder_metrics, previous)

    async def probe(self, upstream: Upstream, seconds: float) -> bool:
        return False

    def predict(
        self, api: str, body: Any, headers: Mapping[str, str] | None = None, spent: float = 0.0
    ) -> Prediction:
        """Serve ``body``; ``spent`` seconds pass between its arrival and the pipeline."""

        async def read(limit: int) -> bytes:
            self.clock.now += spent
            return orjson.dumps(body)

        call = PredictionCall(api, "fraud", None, headers or {}, read, self.clock())  # type: ignore[arg-type]
        return asyncio.run(self.service.predict(call, self.tracer.start_span("request")))

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def as_columns(sent: dict[str, Any]) -> dict[str, list[Any]]:
    return {t["name"]: t["data"] for t in sent["inputs"]}


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, FALLBACK + SHADOW)


def test_v1_and_v2_send_the_same_tensors_upstream(stack: Stack) -> None:
    customers = ["c-0001", "c-0002"]
    v1 = stack.predict("v1", v1_entity_doc(customers))
    v2 = stack.predict("v2", v2_entity_doc(customers))
    (_, sent_v1, _), (_, sent_v2, _) = stack.upstream.sent
    assert as_columns(sent_v1) == as_columns(sent_v2)
    assert as_columns(sent_v1)["txn_count_7d"] == [4, 4]
    assert set(as_columns(sent_v1)) == {i.name for i in CARD.inputs}
    assert v1.provenance == v2.provenance
    assert (v1.provenance.variant, v1.provenance.feature_source) == ("primary", "live")
    assert v1.predictions == v2.predictions == [{"score": 0.125, "label": "legit"}] * 2
    assert v1.features is not None and v2.features is not None
    assert [f.source for f in v1.features] == [f.source for f in v2.features] == ["live"] * 2
    assert stack.store.calls == [customers, customers]


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_refused_request_never_reaches_the_store_or_the_upstream(stack: Stack, api: str) -> None:
    body = (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"], hour=99)
    with pytest.raises(ContractViolation, match="hour"):
        stack.predict(api, body)
    assert stack.store.calls == [] and stack.upstream.sent == []
    assert stack.metric("gateway_rejections_total", model="fraud", field="hour", rule="range") == 1


def test_v2_entity_lists_are_bounded_before_the_store_is_asked(stack: Stack) -> None:
    with pytest.raises(ContractViolation, match="names 257 entities; the maximum is 256"):
        stack.predict("v2", v2_entity_doc([f"c-{i}" for i in range(257)]))
    with pytest.raises(ContractViolation, match="rule: max_string_length"):
        stack.predict("v2", v2_entity_doc(["c-" + "7" * 300]))
    with pytest.raises(ContractViolation, match="names 2 entities for a batch of 1 rows"):
        stack.predict("v2", v2_entity_doc(["c-0001"]) | {"parameters": {"customer_id": "c-1,c-2"}})
    clash = v2_entity_doc(["c-0001"])
    clash["inputs"].append({"name": "txn_count_7d", "datatype": "FP32", "shape": [1, 1], "data": [1.0]})  # fmt: skip
    with pytest.raises(ContractViolation, match="come from the feature store"):
        stack.predict("v2", clash)
    assert stack.store.calls == []


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_one_deadline_from_arrival_bounds_the_lookup_and_the_upstream(
    stack: Stack, api: str
) -> None:
    stack.store.on_call = lambda: stack.clock.advance(0.1)
    body = (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"])
    stack.predict(api, body, {"x-request-timeout-ms": "200"}, spent=0.03)
    # 200 ms from arrival, 50 ms kept for the fallback: 30 ms were spent reading the body,
    # the lookup may take the 120 ms left, and it took 100 ms.
    assert stack.store.budgets == [pytest.approx(0.12)]
    assert stack.upstream.sent[0][2] == pytest.approx(0.02)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_features_that_cannot_be_had_send_both_apis_to_the_fallback(stack: Stack, api: str) -> None:
    body = (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-never-seen"])
    prediction = stack.predict(api, body)
    provenance = prediction.provenance
    assert (provenance.variant, provenance.served_by, provenance.degraded) == ("fallback", "fallback:onnx", True)  # fmt: skip
    assert stack.upstream.sent == [] and prediction.features is None
    assert len(prediction.predictions) == 1
    assert stack.metric("gateway_served_by_total", model="fraud", rung="fallback") == 1
    assert stack.shadows._queue.qsize() == 0  # a fallback answer is not compared


def test_without_lower_rungs_missing_features_are_unavailable(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    for api, body in (
        ("v1", v1_entity_doc(["c-never-seen"])),
        ("v2", v2_entity_doc(["c-never-seen"])),
    ):
        with pytest.raises(FeaturesUnavailable, match="'c-never-seen' is missing in the store"):
            stack.predict(api, body)
    assert stack.upstream.sent == []


def test_an_upstream_answer_is_offered_to_the_shadows_with_the_body_sent(stack: Stack) -> None:
    stack.predict("v2", v2_entity_doc(["c-0001"]))
    job = stack.shadows._queue.get_nowait()
    assert orjson.loads(job.body) == stack.upstream.sent[0][1]
    assert job.served == [0.125]


def test_a_request_for_outputs_without_the_score_has_no_scores(stack: Stack) -> None:
    body = v2_entity_doc(["c-0001"]) | {"id": "r-1", "outputs": [{"name": "label"}]}
    prediction = stack.predict("v2", body)
    assert prediction.predictions == [] and prediction.request_id == "r-1"
    assert stack.shadows._queue.qsize() == 0


def test_a_v2_entity_doc_needing_no_change_goes_upstream_as_it_came(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    body = v2_entity_doc(["c-0001"])
    del body["parameters"]
    for name, value in (("avg_amount_30d", 80.5), ("txn_count_7d", 4.0),
                        ("chargeback_rate_90d", 0.01), ("account_age_days", 700.0)):  # fmt: skip
        spec = next(i for i in CARD.inputs if i.name == name)
        value = int(value) if spec.datatype.startswith("INT") else value
        body["inputs"].append({"name": name, "datatype": spec.datatype, "shape": [1, 1], "data": [value]})  # fmt: skip
    stack.predict("v2", body)
    assert stack.upstream.raw == [orjson.dumps(body)] and stack.store.calls == []


def test_a_reload_swaps_the_runtime_and_a_failing_one_keeps_it(stack: Stack) -> None:
    before = stack.service.runtime
    stack.service.apply(parse_config(config_text(FALLBACK + "    max_batch_size: 8\n"), stack.path))
    assert stack.service.runtime is not before
    assert stack.service.runtime.models["fraud"].router.primary is before.models["fraud"].router.primary  # fmt: skip
    applied = stack.service.runtime

    def broken(config: LoadedConfig, previous: Runtime | None) -> Runtime:
        raise RuntimeError("the fallback model cannot be opened")

    stack.service._build_runtime = broken
    with pytest.raises(ConfigError, match="cannot be applied: the fallback model cannot be opened"):
        stack.service.apply(parse_config(config_text(), stack.path))
    assert stack.service.runtime is applied


def test_an_unknown_model_or_version_is_refused_before_the_body_is_read(stack: Stack) -> None:
    read: list[int] = []

    async def reader(limit: int) -> bytes:
        read.append(limit)
        return b"{}"

    for model, version in (("nope", None), ("fraud", "99")):
        call = PredictionCall("v2", model, version, {}, reader, stack.clock())
        with pytest.raises(GatewayError, match="99" if version else "unknown model 'nope'"):
            asyncio.run(stack.service.predict(call, stack.tracer.start_span("request")))
    assert read == []


# --- invalid is not unusual -------------------------------------------------------------


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_an_unusual_value_is_served_and_flagged(stack: Stack, api: str) -> None:
    body = (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"], amount=50_000.0)
    prediction = stack.predict(api, body)
    provenance = prediction.provenance
    assert (provenance.variant, provenance.input_warnings) == ("primary", ("amount",))
    assert provenance.headers()["x-gateway-input-warnings"] == "amount"
    assert provenance.v2_parameters()["gateway_input_warnings"] == "amount"
    assert provenance.v1_body()["input_warnings"] == ["amount"]
    usual = stack.predict(api, (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"]))
    assert usual.provenance.input_warnings == ()
    assert "x-gateway-input-warnings" not in usual.provenance.headers()


def test_an_unusual_store_value_is_flagged_whatever_the_policy(tmp_path: Path) -> None:
    stack = Stack(tmp_path, FALLBACK + "    contract: {out_of_distribution: reject}\n")
    stack.store.rows["c-0001"] = (FEATURES | {"customer_stats:chargeback_rate_90d": 0.6}, 60.0)
    prediction = stack.predict("v1", v1_entity_doc(["c-0001"]))
    assert prediction.provenance.variant == "primary"  # not the client's fault: served
    assert prediction.provenance.input_warnings == ("chargeback_rate_90d",)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_reject_refuses_an_unusual_value_the_client_sent(tmp_path: Path, api: str) -> None:
    stack = Stack(tmp_path, FALLBACK + "    contract: {out_of_distribution: reject}\n")
    body = (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"], amount=50_000.0)
    with pytest.raises(ContractViolation, match=r"amount: outside the training range \[0.57, "):
        stack.predict(api, body)
    assert stack.store.calls == [] and stack.upstream.sent == []
    assert stack.metric("gateway_rejections_total", model="fraud", field="amount", rule="out_of_distribution") == 1  # fmt: skip


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_fallback_serves_a_request_with_unusual_values(tmp_path: Path, api: str) -> None:
    stack = Stack(tmp_path, FALLBACK + "    contract: {out_of_distribution: fallback}\n")
    body = (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"], amount=50_000.0)
    provenance = stack.predict(api, body).provenance
    assert (provenance.variant, provenance.degraded) == ("fallback", True)
    assert provenance.input_warnings == ("amount",)
    assert stack.upstream.sent == []
    assert stack.predict(api, (v1_entity_doc if api == "v1" else v2_entity_doc)(["c-0001"])).provenance.variant == "primary"  # fmt: skip


def test_a_policy_sending_requests_down_the_ladder_needs_a_rung_there(tmp_path: Path) -> None:
    for key in (
        "contract: {out_of_distribution: fallback}",
        "data_quality: {on_critical: fallback}",
    ):
        with pytest.raises(ConfigError, match="needs a fallback model or a default_response"):
            parse_config(config_text(f"    {key}\n"), tmp_path / "gateway.yaml")
    parse_config(config_text(FALLBACK + "    data_quality: {on_critical: fallback}\n"), tmp_path / "g.yaml")  # fmt: skip


def healthy_store(stack: Stack, customers: int, *, times: float = 1.0) -> list[str]:
    """``customers`` store rows whose features have their training distribution; the
    ``avg_amount_30d`` ones multiplied by ``times`` (a silent corruption: still valid)."""
    columns = {}
    for spec in CARD.inputs:
        if spec.source == "feature":
            assert spec.stats is not None and spec.stats.distribution is not None
            columns[spec.name] = typical_values(
                spec.stats.distribution, customers, seed=1, integer=spec.kind == "int"
            )
    ids = []
    for i in range(min(len(values) for values in columns.values())):
        row = {f"customer_stats:{name}": values[i] for name, values in columns.items()}
        row["customer_stats:avg_amount_30d"] *= times
        stack.store.rows[f"c-{i:04d}"] = (row, 60.0)
        ids.append(f"c-{i:04d}")
    return ids


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_the_monitors_see_every_input_the_sources_and_the_served_score(
    stack: Stack, api: str
) -> None:
    ids = healthy_store(stack, 100)
    for customer in ids[:10]:
        stack.predict(api, (v1_entity_doc if api == "v1" else v2_entity_doc)([customer]))
    stack.predict(
        api, (v1_entity_doc if api == "v1" else v2_entity_doc)(ids[10:12], amount=50_000.0)
    )
    quality = stack.service.runtime.model("fraud").quality
    assert quality is not None
    quality.refresh()
    counts = {name: figures.window_count for name, figures in quality.inputs.items()}
    assert counts == dict.fromkeys(counts, 12)  # request and store inputs alike
    assert quality.scores["primary"].window_count == 12
    assert quality.out_of_distribution == {"amount": 2}
    assert quality.inputs["avg_amount_30d"].cache_share is None  # below min_count: not judged


def test_on_critical_fallback_serves_the_fallback_while_a_store_feature_is_corrupt(
    tmp_path: Path,
) -> None:
    stack = Stack(
        tmp_path,
        FALLBACK + "    data_quality: {on_critical: fallback, window: 200, min_count: 100}\n",
    )
    quality = stack.service.runtime.model("fraud").quality
    assert quality is not None
    corrupt = healthy_store(stack, 200, times=100.0)
    for customer in corrupt:  # served by the primary and flagged, until the next refresh
        assert stack.predict("v1", v1_entity_doc([customer])).provenance.variant == "primary"
    quality.refresh()
    assert quality.critical_store_inputs() == ["avg_amount_30d"]
    served = stack.predict("v1", v1_entity_doc([corrupt[0]])).provenance
    assert (served.variant, served.degraded) == ("fallback", True)
    sent = len(stack.upstream.sent)
    healthy = healthy_store(stack, 200)  # the store is repaired; requests still enrich
    for customer in healthy:
        assert stack.predict("v1", v1_entity_doc([customer])).provenance.variant == "fallback"
    assert len(stack.upstream.sent) == sent  # none went upstream meanwhile
    quality.refresh()
    assert quality.fallback_reason is None
    assert stack.predict("v1", v1_entity_doc([healthy[0]])).provenance.variant == "primary"


def test_the_monitors_survive_a_reload_that_leaves_them_alone(stack: Stack) -> None:
    before = stack.service.runtime.model("fraud").quality
    stack.path.write_text(config_text(FALLBACK + SHADOW + "    max_batch_size: 8\n"))
    stack.service.apply(parse_config(stack.path.read_text(), stack.path))
    assert stack.service.runtime.model("fraud").quality is before
    stack.service.apply(
        parse_config(
            config_text(FALLBACK + "    data_quality: {window: 50, min_count: 10}\n"), stack.path
        )
    )
    after = stack.service.runtime.model("fraud").quality
    assert after is not before and after is not None and after.settings.window == 50
