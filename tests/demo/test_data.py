"""The synthetic card-fraud generator: deterministic, plausible, and learnable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gateway.demo.data import CATEGORIES, CUSTOMER_FEATURES, customer_stats, transactions


def test_customer_stats_is_deterministic_per_seed() -> None:
    pd.testing.assert_frame_equal(customer_stats(), customer_stats(7))
    assert not customer_stats(7).equals(customer_stats(8))


def test_customer_stats_has_every_customer_with_plausible_values() -> None:
    stats = customer_stats()
    assert list(stats["customer_id"]) == [f"c-{i:04d}" for i in range(10_000)]
    assert list(stats.columns) == ["customer_id", *CUSTOMER_FEATURES]
    assert stats["txn_count_7d"].dtype == np.int64
    assert stats["account_age_days"].dtype == np.int64
    assert (stats["avg_amount_30d"] > 0).all()
    assert stats["chargeback_rate_90d"].between(0.0, 1.0).all()
    assert (stats["account_age_days"] >= 1).all()
    # Skewed like card data: a long right tail of big spenders.
    assert stats["avg_amount_30d"].mean() > stats["avg_amount_30d"].median()


def test_transactions_are_deterministic_per_seed() -> None:
    pd.testing.assert_frame_equal(transactions(2_000, seed=3), transactions(2_000, seed=3))
    assert not transactions(2_000, seed=3).equals(transactions(2_000, seed=4))


def test_transactions_join_customer_stats_and_carry_request_fields() -> None:
    txns = transactions(20_000, seed=11)
    joined = txns.merge(customer_stats(), on="customer_id", suffixes=("", "_stats"))
    for name in CUSTOMER_FEATURES:
        assert (joined[name] == joined[f"{name}_stats"]).all(), name
    assert (txns["amount"] >= 0).all()
    assert set(txns["merchant_category"]) == set(CATEGORIES)
    assert {"grocery", "electronics", "travel", "restaurants", "online"} <= set(CATEGORIES)
    assert txns["hour"].between(0, 23).all()
    assert txns["is_foreign"].dtype == bool
    assert set(txns["is_fraud"]) == {0, 1}
    assert txns["is_fraud"].mean() == pytest.approx(0.045, abs=0.015)
