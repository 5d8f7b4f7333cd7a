"""The committed cards carry domains and drift baselines, as models/train.py writes them."""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from types import ModuleType

import numpy as np
import pytest
from support import MODELS

from gateway.contracts.card import Distribution, load_card

CARDS = ["fraud-v1", "fraud-v2", "fraud-v3", "fraud-fallback"]


@functools.cache
def train_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fraud_train", MODELS / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)  # sklearn is imported only where a model is fitted
    return module


@pytest.mark.parametrize("name", CARDS)
def test_every_input_has_a_domain_or_frequencies_and_the_score_a_baseline(name: str) -> None:
    card = load_card(MODELS / name)
    for spec in card.inputs:
        assert spec.stats is not None, spec.name
        if spec.kind in ("float", "int"):
            assert spec.domain is not None and spec.range is not None, spec.name
            assert spec.stats.distribution is not None, spec.name
            low = spec.domain.min if spec.domain.min is not None else -math.inf
            high = spec.domain.max if spec.domain.max is not None else math.inf
            assert low <= spec.range.min <= spec.range.max <= high, spec.name
        else:
            assert spec.stats.frequencies and sum(spec.stats.frequencies.values()) == pytest.approx(1, abs=1e-3)  # fmt: skip
    assert card.score.distribution is not None


def test_the_meaning_of_the_demo_fields_sets_their_domains() -> None:
    domains = {s.name: s.domain for s in load_card(MODELS / "fraud-v1").inputs if s.domain}
    assert {n: (d.min, d.max) for n, d in domains.items()} == {
        "avg_amount_30d": (0, None),
        "txn_count_7d": (0, None),
        "chargeback_rate_90d": (0, 1),
        "account_age_days": (0, None),
        "amount": (0, None),
        "hour": (0, 23),
    }


def test_the_committed_baselines_are_what_training_data_gives() -> None:
    train = train_module()
    card = load_card(MODELS / "fraud-v1")
    data = train.transactions(40_000, 101)  # fraud-v1's training set (its card says so)
    for spec in card.inputs:
        if spec.kind in ("float", "int"):
            assert spec.stats is not None
            recomputed = Distribution.model_validate(
                train.distribution(data[spec.name].to_numpy(dtype=np.float64))
            )
            assert recomputed == spec.stats.distribution, spec.name


def test_a_distribution_bins_values_as_the_monitors_do() -> None:
    train = train_module()
    values = np.arange(1000, dtype=np.float64)
    baseline = Distribution.model_validate(train.distribution(values))
    assert len(baseline.edges) == 9 and baseline.shares == (0.1,) * 10
    constant = Distribution.model_validate(train.distribution(np.zeros(50)))
    assert constant.edges == (0.0,) and constant.shares == (0.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        train.distribution(np.array([1.0, np.nan]))
