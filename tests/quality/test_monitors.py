"""The data-quality monitors: windows judged against the fraud card's training baselines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from quality_samples import typical_values
from support import MODELS

from gateway.contracts.card import CardInput, load_card
from gateway.contracts.distribution import DistributionCheck
from gateway.quality.monitors import ModelQuality
from gateway.quality.psi import psi
from gateway.settings import ConfigError, parse_config
from gateway.settings.quality import DataQualitySettings
from gateway.settings.schema import ContractSettings

CARD = load_card(MODELS / "fraud-v1")
FALLBACK_CARD = load_card(MODELS / "fraud-fallback")
SPECS = {spec.name: spec for spec in CARD.inputs}
USUAL = DistributionCheck.compile(CARD, ContractSettings())
SETTINGS = DataQualitySettings()


@dataclass
class Row:
    sources: dict[str, str]
    stale: frozenset[str] = field(default_factory=frozenset)


def healthy_columns(n: int, seed: int = 0) -> dict[str, list[object]]:
    """``n`` rows of every input with its training distribution."""
    columns: dict[str, list[object]] = {}
    for spec in CARD.inputs:
        assert spec.stats is not None
        if spec.stats.distribution is not None:
            columns[spec.name] = list(
                typical_values(spec.stats.distribution, n, seed=seed, integer=spec.kind == "int")
            )[:n]
        else:
            frequencies = spec.stats.frequencies or {}
            values = [v for v, share in frequencies.items() for _ in range(round(share * n))]
            if spec.kind == "bool":
                columns[spec.name] = [v == "true" for v in values]
            else:
                columns[spec.name] = list(values)
    return columns


def quality(**settings: object) -> ModelQuality:
    return ModelQuality.build(
        "fraud",
        CARD,
        DataQualitySettings.model_validate(settings),
        USUAL,
        fallback_card=FALLBACK_CARD,
    )


def test_psi_is_zero_for_the_baseline_and_grows_with_the_shift() -> None:
    expected = np.full(10, 0.1)
    assert psi(expected, np.full(10, 100)) == pytest.approx(0.0)
    small = psi(expected, np.array([120, 80, *[100] * 8]))
    large = psi(expected, np.array([500, 500, *[0] * 8]))
    assert 0 < small < 0.1 < 0.25 < large
    with pytest.raises(ValueError, match="empty"):
        psi(expected, np.zeros(10))


def test_every_input_of_the_fraud_card_has_a_baseline() -> None:
    monitors = quality()
    monitors.observe(healthy_columns(1000))
    monitors.refresh()
    assert set(monitors.inputs) == set(SPECS)
    assert {name: f.status for name, f in monitors.inputs.items()} == dict.fromkeys(SPECS, "ok")
    assert max(f.psi or 0.0 for f in monitors.inputs.values()) < 0.05


def test_a_feature_multiplied_by_100_is_critical_with_its_reasons() -> None:
    monitors = quality()
    columns = healthy_columns(1000)
    columns["avg_amount_30d"] = [float(v) * 100 for v in columns["avg_amount_30d"]]  # type: ignore[arg-type]
    monitors.observe(columns)
    monitors.refresh()
    figures = monitors.inputs["avg_amount_30d"]
    assert figures.status == "critical"
    assert figures.psi is not None and figures.psi > 0.25
    assert figures.out_of_range_share is not None and figures.out_of_range_share > 0.25
    assert any(reason.startswith("psi ") for reason in figures.reasons)
    assert figures.values_critical
    others = {n: f.status for n, f in monitors.inputs.items() if n != "avg_amount_30d"}
    assert set(others.values()) == {"ok"}


def test_a_window_below_min_count_is_not_judged() -> None:
    monitors = quality(min_count=100)
    monitors.observe({"amount": [50_000.0] * 99})
    monitors.refresh()
    figures = monitors.inputs["amount"]
    assert (figures.status, figures.psi, figures.window_count) == ("ok", None, 99)
    monitors.observe({"amount": [50_000.0]})
    monitors.refresh()
    assert monitors.inputs["amount"].status == "critical"


def test_the_window_slides_so_a_recovered_input_is_ok_again() -> None:
    monitors = quality(window=200, min_count=50)
    monitors.observe({"amount": [50_000.0] * 200})
    monitors.refresh()
    assert monitors.inputs["amount"].status == "critical"
    monitors.observe({"amount": healthy_columns(200)["amount"]})
    monitors.refresh()
    assert monitors.inputs["amount"].window_count == 200
    assert monitors.inputs["amount"].status == "ok"


def test_nulls_unseen_categories_and_flipped_booleans_are_judged() -> None:
    monitors = quality(min_count=10)
    columns = healthy_columns(1000)
    columns["amount"] = [None] * 300 + columns["amount"][300:]
    columns["merchant_category"] = ["casino"] * 50 + columns["merchant_category"][50:]
    columns["is_foreign"] = [True] * len(columns["is_foreign"])
    monitors.observe(columns)
    monitors.refresh()
    amount = monitors.inputs["amount"]
    assert amount.null_share == pytest.approx(0.3) and amount.status == "critical"
    category = monitors.inputs["merchant_category"]
    assert category.unseen_category_share == pytest.approx(0.05, abs=0.002)
    assert category.status == "warning"  # 0.05: above 0.02, not above 0.1
    assert monitors.inputs["is_foreign"].status == "critical"  # all true: PSI far above 0.25


def test_cache_and_default_shares_are_judged_but_never_trigger_the_fallback() -> None:
    monitors = quality(min_count=10, on_critical="fallback")
    rows = [Row({"avg_amount_30d": "defaults", "txn_count_7d": "cache"}, frozenset({"txn_count_7d"}))] * 100  # fmt: skip
    monitors.observe(healthy_columns(1000))
    monitors.observe_sources(rows)
    monitors.refresh()
    avg, count = monitors.inputs["avg_amount_30d"], monitors.inputs["txn_count_7d"]
    assert (avg.default_share, avg.cache_share, avg.stale_share) == (1.0, 0.0, 0.0)
    assert (count.default_share, count.cache_share, count.stale_share) == (0.0, 1.0, 1.0)
    assert avg.status == count.status == "critical"
    assert not avg.values_critical and monitors.fallback_reason is None
    assert monitors.inputs["amount"].default_share is None  # a request input has no source


def test_on_critical_fallback_names_the_store_feature_and_clears_when_it_recovers() -> None:
    monitors = quality(window=500, min_count=100, on_critical="fallback")
    healthy = healthy_columns(500)
    corrupted = dict(healthy, chargeback_rate_90d=[float(v) * 100 for v in healthy["chargeback_rate_90d"]])  # type: ignore[arg-type]  # fmt: skip
    monitors.observe(corrupted)
    monitors.refresh()
    assert monitors.critical_store_inputs() == ["chargeback_rate_90d"]
    assert monitors.fallback_reason is not None
    assert monitors.fallback_reason.startswith("store features critical: chargeback_rate_90d (")
    monitors.observe(healthy)
    monitors.refresh()
    assert monitors.fallback_reason is None


def test_a_critical_request_input_does_not_send_requests_to_the_fallback() -> None:
    monitors = quality(min_count=10, on_critical="fallback")
    monitors.observe({"amount": [50_000.0] * 100})
    monitors.refresh()
    assert monitors.inputs["amount"].status == "critical"
    assert monitors.fallback_reason is None  # the fallback reads amount too


def test_scores_are_judged_per_variant_against_their_own_card() -> None:
    monitors = quality(min_count=50)
    assert CARD.score.distribution is not None and FALLBACK_CARD.score.distribution is not None
    monitors.observe_scores("primary", typical_values(CARD.score.distribution, 1000))
    monitors.observe_scores("fallback", typical_values(CARD.score.distribution, 1000))
    monitors.observe_scores("canary", [0.9] * 100)
    monitors.observe_scores("default", [0.5] * 100)  # a constant: not watched
    monitors.refresh()
    assert monitors.scores["primary"].status == "ok"
    assert monitors.scores["canary"].status == "critical"
    fallback_psi = monitors.scores["fallback"].psi
    assert fallback_psi is not None and fallback_psi > 0.1  # v1's scores are not the fallback's
    assert set(monitors.scores) == {"primary", "canary", "fallback"}
    status = monitors.status()
    assert status["score"]["status"] == "ok" and status["score"]["window_count"] == 1000
    assert set(status["score"]["by_variant"]) == {"primary", "canary", "fallback"}


def test_status_has_the_contract_fields_and_counts_out_of_distribution_values() -> None:
    monitors = quality()
    monitors.count_out_of_distribution({"amount": 2})
    monitors.count_out_of_distribution({"amount": 1, "hour": 1})
    monitors.refresh()
    status = monitors.status()
    for figures in [*status["inputs"].values(), status["score"]]:
        assert {"status", "psi", "out_of_range_share", "window_count"} <= set(figures)
    assert status["inputs"]["amount"]["out_of_distribution_total"] == 3
    assert status["mitigation"] == {"active": False, "reason": None}


def test_a_card_without_baselines_reports_no_baseline() -> None:
    bare = CARD.model_copy(
        update={
            "inputs": tuple(
                CardInput.model_validate(spec.model_dump() | {"stats": None})
                for spec in CARD.inputs
            ),
            "score": CARD.score.model_copy(update={"distribution": None}),
        }
    )
    monitors = ModelQuality.build("fraud", bare, DataQualitySettings(min_count=10), USUAL)
    monitors.observe({"amount": [50_000.0] * 100})
    monitors.observe_scores("primary", [0.5] * 100)
    monitors.refresh()
    amount = monitors.inputs["amount"]
    assert (amount.status, amount.psi) == ("no_baseline", None)
    assert amount.out_of_range_share == 1.0  # the training range still tells unusual values
    assert monitors.scores["primary"].status == "no_baseline"


def test_min_count_defaults_to_500_or_the_whole_smaller_window() -> None:
    # 100 values over ten deciles judge sampling noise as drift (PSI ~0.09, warning 0.1).
    assert DataQualitySettings().min_count == 500
    assert DataQualitySettings(window=200).min_count == 200
    assert DataQualitySettings(window=200, min_count=50).min_count == 50
    with pytest.raises(ValueError, match="min_count 300 is larger than window 200"):
        DataQualitySettings(window=200, min_count=300)


def test_thresholds_out_of_order_are_refused_with_their_key_path(tmp_path: Path) -> None:
    text = f"""
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://upstream.test"}}
    data_quality: {{psi: {{warning: 0.3, critical: 0.2}}, window: 50, min_count: 60}}
"""
    with pytest.raises(ConfigError) as refused:
        parse_config(text, tmp_path / "gateway.yaml")
    message = str(refused.value)
    assert (
        "models.fraud.data_quality.psi" in message
        and "warning 0.3 is above critical 0.2" in message
    )
