"""The feature plan compiled from card + config; misfits are config errors with key paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import runtime_of, write_card

from gateway.settings import ConfigError, parse_config
from gateway.settings.schema import StoreBreakerSettings

BASE = """
feature_store: {url: "http://127.0.0.1:6566/"}
models:
  toy:
    card: toy-model
    primary: {name: toy-v1, url: "http://127.0.0.1:9001"}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_card(tmp_path / "toy-model")
    return tmp_path


def test_defaults_fetch_the_cards_refs_for_its_entity_key(folder: Path) -> None:
    loaded = parse_config(BASE, folder / "gateway.yaml")
    store = loaded.settings.feature_store
    assert store is not None and store.url == "http://127.0.0.1:6566"
    assert (store.timeout_ms, store.breaker.failure_rate_percent, store.cache.max_entries) == (
        200,
        50.0,
        100_000,
    )
    assert (store.breaker.window_seconds, store.breaker.fail_max, store.coalesce.enabled) == (
        1.0,
        0,
        True,
    )
    plan = runtime_of(loaded).models["toy"].features
    assert plan is not None
    assert plan.entity_key == "customer_id"
    assert plan.refs == ("customer_stats:avg_amount_30d", "customer_stats:txn_count_7d")
    assert [f.max_age for f in plan.features] == [86_400.0, 86_400.0]
    assert [f.default for f in plan.features] == [None, None]  # the toy card has no defaults


def test_overrides_win_most_specific_first(folder: Path) -> None:
    text = (
        BASE
        + """    features:
      entity_key: card_id
      feature_refs: {avg_amount_30d: "card_stats:avg_amount_30d"}
      max_age_seconds: 100
      max_age_overrides: {card_stats: 50, txn_count_7d: 10, "customer_stats:txn_count_7d": 20}
"""
    )
    plan = runtime_of(parse_config(text, folder / "gateway.yaml")).models["toy"].features
    assert plan is not None and plan.entity_key == "card_id"
    assert plan.refs == ("card_stats:avg_amount_30d", "customer_stats:txn_count_7d")
    assert [f.max_age for f in plan.features] == [50.0, 10.0]
    assert plan.max_age == 50.0


def test_read_through_is_off_by_default_and_on_when_every_feature_has_a_refresh(
    folder: Path,
) -> None:
    plan = runtime_of(parse_config(BASE, folder / "gateway.yaml")).models["toy"].features
    assert plan is not None and not plan.read_through
    assert [f.refresh_after for f in plan.features] == [None, None]
    one = BASE + "    features: {refresh_after_seconds: {txn_count_7d: 2}}\n"
    plan = runtime_of(parse_config(one, folder / "gateway.yaml")).models["toy"].features
    assert plan is not None and not plan.read_through  # avg_amount_30d is always fetched
    assert [f.refresh_after for f in plan.features] == [None, 2.0]
    view = BASE + "    features: {refresh_after_seconds: {customer_stats: 5, txn_count_7d: 2}}\n"
    plan = runtime_of(parse_config(view, folder / "gateway.yaml")).models["toy"].features
    assert plan is not None and plan.read_through
    assert [f.refresh_after for f in plan.features] == [5.0, 2.0]


def test_without_a_store_features_come_from_the_request(folder: Path) -> None:
    text = BASE.replace('feature_store: {url: "http://127.0.0.1:6566/"}', "")
    runtime = runtime_of(parse_config(text, folder / "gateway.yaml"))
    assert runtime.models["toy"].features is None
    off = BASE + "    features: {enabled: false}\n"
    assert runtime_of(parse_config(off, folder / "gateway.yaml")).models["toy"].features is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("6566/", "6566/?x=1"), "feature_store.url: must not have a query"),
        (BASE + "    features: {on_missing: maybe}\n", "models.toy.features.on_missing: Input should be 'defaults' or 'unavailable'"),
        (BASE + "    features: {max_age_seconds: 0}\n", "models.toy.features.max_age_seconds: Input should be greater than 0"),
        (BASE + "    features: {max_age_overrides: {txn_count_7d: -1}}\n", "ages must be greater than 0: ['txn_count_7d']"),
        (BASE + "    features: {max_age_overrides: {colour: 5}}\n", "models.toy.features.max_age_overrides.colour: names no feature input, ref or view"),
        (BASE + "    features: {refresh_after_seconds: {customer_stats: 0}}\n", "ages must be greater than 0: ['customer_stats']"),
        (BASE + "    features: {refresh_after_seconds: {colour: 5}}\n", "models.toy.features.refresh_after_seconds.colour: names no feature input, ref or view"),
        (BASE + "    features: {max_age_seconds: 60, refresh_after_seconds: {customer_stats: 61}}\n", "models.toy.features.refresh_after_seconds.customer_stats: 61 s is longer than the max age of 'avg_amount_30d' (60 s)"),
        (BASE + "    features: {feature_refs: {amount: 'a:b'}}\n", "models.toy.features.feature_refs.amount: not a feature input of the card"),
        (BASE + "    features: {feature_refs: {txn_count_7d: 'nocolon'}}\n", "feature refs must look like 'view:feature'"),
        (BASE + "    features: {no_defaults: [amount]}\n", "models.toy.features.no_defaults: 'amount' is not a feature input"),
        (BASE.replace('feature_store: {url: "http://127.0.0.1:6566/"}', "") + "    features: {enabled: true}\n", "models.toy.features.enabled: needs a top-level feature_store section"),
    ],
)  # fmt: skip
def test_misfits_name_their_key_path(folder: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, folder / "gateway.yaml")
    assert any(expected in str(p) for p in caught.value.problems), caught.value.problems


def test_the_store_breakers_longest_interval_follows_a_longer_first_one() -> None:
    assert StoreBreakerSettings().max_reset_timeout_seconds == 10.0
    assert StoreBreakerSettings(reset_timeout_seconds=60).max_reset_timeout_seconds == 60.0
    with pytest.raises(ValueError, match="max_reset_timeout_seconds 5 is below"):
        StoreBreakerSettings(reset_timeout_seconds=20, max_reset_timeout_seconds=5)
