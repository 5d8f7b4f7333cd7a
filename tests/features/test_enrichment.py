"""Enrichment's ladder (live -> cache -> defaults -> unavailable) on a fake store and clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import NOW, FakeStore
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from support import MODELS

from gateway.contracts.card import load_card
from gateway.contracts.feature_plan import FeaturePlan, compile_plan
from gateway.errors import FeatureStoreTimeout, FeaturesUnavailable
from gateway.features.cache import LastKnownGood
from gateway.features.enrichment import Enricher
from gateway.features.recovery_probe import RecoveryProbe
from gateway.resilience.breaker import CircuitBreaker
from gateway.settings.schema import CoalesceSettings, ModelSettings
from gateway.telemetry.feature_metrics import FeatureMetrics

CARD = load_card(MODELS / "fraud-v1")
REFS = [i.feature_ref for i in CARD.inputs if i.source == "feature"]
VALUES = {"customer_stats:avg_amount_30d": 80.5, "customer_stats:txn_count_7d": 4,
          "customer_stats:chargeback_rate_90d": 0.01, "customer_stats:account_age_days": 700}  # fmt: skip


def plan(**features: Any) -> FeaturePlan:
    settings = ModelSettings.model_validate(
        {"card": "x", "primary": {"name": "p", "url": "http://h:1"}, "features": features}
    )
    compiled = compile_plan("fraud", settings, CARD, store_configured=True)
    assert compiled is not None
    return compiled


class Harness:
    def __init__(self, coalesce: CoalesceSettings | None = None) -> None:
        self.now = NOW
        self.store = FakeStore()
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("test")
        self.registry = CollectorRegistry()
        self.breaker = CircuitBreaker(
            "feature_store", fail_max=2, reset_timeout=5, clock=lambda: self.now
        )
        self.enricher = Enricher(
            client=self.store,
            breaker=self.breaker,
            cache=LastKnownGood(100, 86_400 * 2, lambda: self.now),
            metrics=FeatureMetrics(self.registry),
            tracer=self.tracer,
            wall_clock=lambda: self.now,
            timer=lambda: self.now,
            coalesce=coalesce,
        )

    def enrich(self, p: FeaturePlan, entities: list[str], within: float | None = None) -> Any:
        async def run() -> Any:
            with self.tracer.start_as_current_span("request") as span:
                return await self.enricher.enrich(p, entities, span, within)

        return asyncio.run(run())

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_live_values_in_one_call_for_repeated_entities(h: Harness) -> None:
    h.store.rows = {
        "c-1": (VALUES, 30.0),
        "c-2": (VALUES | {"customer_stats:txn_count_7d": 9}, 60.0),
    }
    result = h.enrich(plan(), ["c-1", "c-2", "c-1"])
    assert h.store.calls == [["c-1", "c-2"]]
    assert result.source == "live"
    assert result.columns["txn_count_7d"] == [4, 9, 4]
    assert result.columns["avg_amount_30d"] == [80.5, 80.5, 80.5]
    assert [i.oldest_age_seconds for i in result.instances] == [30.0, 60.0, 30.0]
    assert result.instances[0].sources == dict.fromkeys(result.columns, "live")
    span = next(s for s in h.exporter.get_finished_spans() if s.name == "feast get-online-features")
    assert span.attributes is not None
    assert span.attributes["gateway.feature_store.entity_count"] == 2
    assert (span.attributes["server.address"], span.attributes["server.port"]) == ("fake-store", 80)
    assert span.attributes["gateway.feature_store.outcome"] == "ok"


def test_the_requests_remaining_budget_reaches_the_store(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 30.0)}
    h.enrich(plan(), ["c-1"])
    h.enrich(plan(), ["c-1"], within=0.042)
    assert h.store.budgets == [None, 0.042]


def test_store_failure_serves_the_cache_then_the_breaker_skips_the_store(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 30.0)}
    h.enrich(plan(), ["c-1"])
    h.store.error = FeatureStoreTimeout("fs", "slow")
    h.now += 100
    for _ in range(2):
        result = h.enrich(plan(), ["c-1"])
        assert result.source == "cache" and result.store_outcome == "feature_store_timeout"
        assert result.columns["avg_amount_30d"] == [80.5]
        assert result.instances[0].oldest_age_seconds == 130.0
    assert h.breaker.state == "open"
    calls = len(h.store.calls)
    result = h.enrich(plan(), ["c-1"])
    assert len(h.store.calls) == calls  # open: not called
    assert result.source == "cache" and result.store_outcome == "circuit_open"
    assert h.metric("gateway_feature_cache_lookups_total", model="fraud", result="hit") == 12


def test_a_cached_value_past_its_budget_falls_to_the_default(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 0.0)}
    p = plan(
        max_age_seconds=600, max_age_overrides={"customer_stats": 60, "account_age_days": 6000}
    )
    h.enrich(p, ["c-1"])
    h.store.error = FeatureStoreTimeout("fs", "slow")
    h.now += 120
    result = h.enrich(p, ["c-1"])
    assert result.source == "defaults"
    assert result.instances[0].sources["account_age_days"] == "cache"
    assert result.instances[0].sources["avg_amount_30d"] == "defaults"
    assert result.columns["avg_amount_30d"] == [54.79]  # the card's training median
    assert result.instances[0].oldest_age_seconds == 120.0


def test_stale_live_values_are_counted_and_not_used(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 7200.0)}
    result = h.enrich(plan(max_age_seconds=3600), ["c-1"])
    assert result.source == "defaults"
    assert h.metric("gateway_feature_stale_values_total", model="fraud") == 4
    assert len(h.enricher.cache) == 0


def test_unknown_entity_mixed_with_known_ones(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 1.0)}
    result = h.enrich(plan(), ["c-1", "c-nope"])
    assert result.source == "defaults"
    assert [i.source for i in result.instances] == ["live", "defaults"]
    assert result.instances[1].oldest_age_seconds is None
    assert result.columns["txn_count_7d"] == [4, 8]


def test_without_defaults_a_missing_value_makes_the_model_unavailable(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 1.0)}
    with pytest.raises(
        FeaturesUnavailable,
        match=r"feature 'avg_amount_30d' of customer_id 'c-nope' is missing in the store",
    ):
        h.enrich(plan(on_missing="unavailable"), ["c-1", "c-nope"])
    p = plan(no_defaults=["txn_count_7d"])
    h.store.error = FeatureStoreTimeout("fs", "slow")
    with pytest.raises(
        FeaturesUnavailable,
        match=r"'txn_count_7d' of customer_id 'c-2' is not fetched \(feature_store_timeout\)",
    ):
        h.enrich(p, ["c-2"])


def test_a_value_of_the_wrong_type_counts_as_missing(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES | {"customer_stats:txn_count_7d": "many"}, 1.0)}
    result = h.enrich(plan(), ["c-1"])
    assert result.instances[0].sources["txn_count_7d"] == "defaults"


def test_coalesced_requests_share_one_store_call_and_the_breaker_judges_it() -> None:
    h = Harness(CoalesceSettings(window_ms=1.0, max_entities=64))
    h.store.rows = {
        "c-1": (VALUES, 30.0),
        "c-2": (VALUES | {"customer_stats:txn_count_7d": 9}, 60.0),
    }

    async def together() -> list[Any]:
        with h.tracer.start_as_current_span("request") as span:
            return list(await asyncio.gather(
                h.enricher.enrich(plan(), ["c-1"], span, 1.0),
                h.enricher.enrich(plan(), ["c-2", "c-1"], span, 1.0),
            ))  # fmt: skip

    first, second = asyncio.run(together())
    assert h.store.calls == [["c-1", "c-2"]]
    assert first.columns["txn_count_7d"] == [4] and second.columns["txn_count_7d"] == [9, 4]
    assert first.source == second.source == "live"
    # Two failed calls open the breaker (fail_max 2); then requests do not join a batch.
    h.store.error = FeatureStoreTimeout("fs", "slow")
    h.now += 100
    for _ in range(2):
        assert asyncio.run(together())[0].store_outcome == "feature_store_timeout"
    calls = len(h.store.calls)
    assert h.breaker.state == "open"
    skipped = asyncio.run(together())
    assert [r.store_outcome for r in skipped] == ["circuit_open", "circuit_open"]
    assert len(h.store.calls) == calls
    assert skipped[0].source == "cache"


def test_read_through_serves_recent_reads_from_memory_as_live_and_refreshes_older_ones(
    h: Harness,
) -> None:
    h.store.rows = {"c-1": (VALUES, 30.0), "c-2": (VALUES, 30.0)}
    p = plan(refresh_after_seconds={"customer_stats": 5})
    h.enrich(p, ["c-1"])
    h.now += 4  # within refresh_after: c-1 needs no call, c-2 (never read) does
    result = h.enrich(p, ["c-1", "c-2"])
    assert h.store.calls == [["c-1"], ["c-2"]]
    assert result.source == "live" and result.columns["txn_count_7d"] == [4, 4]
    assert result.instances[0].sources == dict.fromkeys(result.columns, "live")
    assert result.instances[0].oldest_age_seconds == 34.0  # the value's age, not the read's
    assert h.metric("gateway_feature_read_through_total", model="fraud") == 1
    assert h.metric("gateway_feature_values_served_total", model="fraud", source="live") == 12
    h.now += 2  # c-1 read 6 s ago: refreshed; c-2 read 2 s ago: from memory
    h.enrich(p, ["c-1", "c-2"])
    assert h.store.calls[-1] == ["c-1"]
    h.now += 0.5
    assert h.enrich(p, ["c-1", "c-2"]).store_outcome == "not_needed"
    assert len(h.store.calls) == 3


def test_read_through_needs_every_feature_and_never_outlives_the_max_age(h: Harness) -> None:
    h.store.rows = {"c-1": (VALUES, 30.0)}
    partial = plan(refresh_after_seconds={"txn_count_7d": 5})
    h.enrich(partial, ["c-1"])
    h.enrich(partial, ["c-1"])
    assert len(h.store.calls) == 2  # three features are always fetched: no saving possible
    p = plan(max_age_seconds=40, refresh_after_seconds={"customer_stats": 20})
    h.now += 1
    assert h.enrich(p, ["c-1"]).source == "live"
    assert len(h.store.calls) == 2  # read 1 s ago (for the other plan): from memory
    h.now += 15  # read 16 s ago, but the value is now 46 s old: over its 40 s budget
    h.store.error = FeatureStoreTimeout("fs", "slow")
    assert h.enrich(p, ["c-1"]).source == "defaults"
    assert len(h.store.calls) == 3


def test_values_from_a_snapshot_or_a_failed_call_are_never_served_as_live(h: Harness) -> None:
    p = plan(refresh_after_seconds={"customer_stats": 60})
    for ref, value in VALUES.items():
        h.enricher.cache.put("c-1", ref, value, NOW - 10)  # a warm start: never read
    h.store.error = FeatureStoreTimeout("fs", "slow")
    result = h.enrich(p, ["c-1"])
    assert result.source == "cache" and len(h.store.calls) == 1


def test_a_healthy_store_gets_its_trial_before_the_open_interval_ends() -> None:
    h = Harness()
    h.enricher.probe = RecoveryProbe(h.store.healthy, h.breaker, 0.25, lambda: h.now,
                                     h.enricher.metrics.recovery_probes)  # fmt: skip
    h.store.rows = {"c-1": (VALUES, 30.0)}
    h.store.error = FeatureStoreTimeout("fs", "slow")

    async def lookups(count: int) -> list[Any]:
        out = []
        for _ in range(count):
            with h.tracer.start_as_current_span("request") as span:
                out.append(await h.enricher.enrich(plan(), ["c-1"], span))
            for _ in range(3):  # let a probe started by this lookup finish
                await asyncio.sleep(0)
        return out

    asyncio.run(lookups(2))
    assert h.breaker.state == "open"  # open for 5 s from here
    asyncio.run(lookups(3))  # the store is still failing: one check, unhealthy
    assert h.store.health_checks == 1 and h.breaker.state == "open"
    h.store.error = None  # the store is back, 0.1 s later
    h.now += 0.1
    asyncio.run(lookups(1))
    assert h.store.health_checks == 1  # within the probe interval: not asked again
    h.now += 0.2
    asyncio.run(lookups(1))  # asked: healthy -> half-open
    assert h.store.health_checks == 2 and h.breaker.state == "half_open"
    result = asyncio.run(lookups(1))[0]
    assert result.source == "live" and h.breaker.state == "closed"
    assert h.metric("gateway_feature_store_probes_total", result="unhealthy") == 1
    assert h.metric("gateway_feature_store_probes_total", result="healthy") == 1
