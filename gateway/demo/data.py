"""Seeded synthetic card-fraud data for the demo: customer stats and labelled transactions.

Deterministic for a given seed (numpy's PCG64 ``default_rng``), so the Feast online store,
the training script and the load generator all see the same customers.

>>> stats = customer_stats()
>>> stats.loc[42, "customer_id"]
'c-0042'
>>> txns = transactions(1_000, seed=1)
>>> sorted(txns.columns)[:3]
['account_age_days', 'amount', 'avg_amount_30d']
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

N_CUSTOMERS: Final = 10_000
CUSTOMER_FEATURES: Final = (
    "avg_amount_30d",
    "txn_count_7d",
    "chargeback_rate_90d",
    "account_age_days",
)
REQUEST_FIELDS: Final = ("amount", "merchant_category", "hour", "is_foreign")
CATEGORIES: Final = (
    "grocery",
    "electronics",
    "travel",
    "restaurants",
    "online",
    "fuel",
    "pharmacy",
)
_CATEGORY_SHARE: Final = (0.26, 0.07, 0.05, 0.18, 0.22, 0.14, 0.08)
# Typical ticket size relative to the customer's own average.
_CATEGORY_SPEND: Final = (0.8, 3.0, 4.0, 0.6, 1.2, 0.7, 0.5)
_CATEGORY_RISK: Final = (-0.5, 1.0, 0.5, -0.4, 0.8, 0.0, -0.3)
# Card activity by hour of day: quiet at night, peaks at lunch and early evening.
_HOUR_WEIGHT: Final = (
    2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 11, 13, 12, 10, 10, 11, 13, 14, 13, 11, 8, 5, 3,
)  # fmt: skip
_INTERCEPT: Final = -3.3


def customer_id(index: int) -> str:
    """The demo's entity key for customer number ``index`` (0-9999)."""
    return f"c-{index:04d}"


def customer_stats(seed: int = 7) -> pd.DataFrame:
    """One row per customer ``c-0000``..``c-9999`` with the ``customer_stats`` features.

    Skewed like real card data: log-normal spend, over-dispersed weekly counts, most
    customers without chargebacks, and many young accounts.
    """
    rng = np.random.default_rng(seed)
    n = N_CUSTOMERS
    avg_amount = np.round(rng.lognormal(np.log(55.0), 0.8, n), 2)
    txn_count = rng.negative_binomial(2, 2 / (2 + 9.0), n).astype(np.int64)
    has_chargeback = rng.random(n) < 0.25
    chargeback = np.where(has_chargeback, rng.beta(1.2, 25.0, n), 0.0).round(4)
    age = np.clip(rng.gamma(1.3, 600.0, n), 1, 3650).astype(np.int64)
    return pd.DataFrame(
        {
            "customer_id": [customer_id(i) for i in range(n)],
            "avg_amount_30d": avg_amount,
            "txn_count_7d": txn_count,
            "chargeback_rate_90d": chargeback,
            "account_age_days": age,
        }
    )


def transactions(n: int, seed: int, *, customer_seed: int = 7) -> pd.DataFrame:
    """``n`` labelled transactions of customers from ``customer_stats(customer_seed)``.

    Columns: ``customer_id``, the four customer features, the request-time fields and
    ``is_fraud`` (0/1). The label is a Bernoulli draw from a logistic function of both
    customer features and request fields plus latent noise, so customer features carry
    most of the signal (notably the amount relative to the customer's usual spend).
    """
    rng = np.random.default_rng(seed)
    customers = customer_stats(customer_seed)
    rows = customers.iloc[rng.integers(0, N_CUSTOMERS, n)].reset_index(drop=True)

    cat_idx = rng.choice(len(CATEGORIES), size=n, p=_CATEGORY_SHARE)
    unusual = rng.random(n) < 0.06
    spend = np.asarray(_CATEGORY_SPEND)[cat_idx] * rng.lognormal(0.0, 0.5, n)
    spend *= np.where(unusual, rng.lognormal(1.6, 0.5, n), 1.0)
    amount = np.round(rows["avg_amount_30d"].to_numpy() * spend, 2)
    hours = np.asarray(_HOUR_WEIGHT, dtype=float)
    hour = rng.choice(24, size=n, p=hours / hours.sum()).astype(np.int64)
    is_travel = cat_idx == CATEGORIES.index("travel")
    is_foreign = rng.random(n) < np.where(is_travel, 0.35, 0.05)

    ratio = np.log(np.maximum(amount, 0.01) / rows["avg_amount_30d"].to_numpy())
    logit = (
        _INTERCEPT
        + 0.9 * np.clip(ratio, -1.0, 4.0)
        + 30.0 * rows["chargeback_rate_90d"].to_numpy()
        - 0.7 * np.log1p(rows["account_age_days"].to_numpy() / 30.0)
        + 0.12 * (rows["txn_count_7d"].to_numpy() - 9)
        + np.asarray(_CATEGORY_RISK)[cat_idx]
        + np.where(hour < 6, 0.9, 0.0)
        + np.where(is_foreign, 0.8, 0.0)
        + rng.normal(0.0, 0.5, n)
    )
    is_fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    rows["amount"] = amount
    rows["merchant_category"] = np.asarray(CATEGORIES, dtype=object)[cat_idx]
    rows["hour"] = hour
    rows["is_foreign"] = is_foreign
    rows["is_fraud"] = is_fraud
    return rows
