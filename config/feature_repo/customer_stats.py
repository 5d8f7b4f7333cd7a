"""Feast definitions for the demo: the ``customer`` entity and the ``customer_stats`` view.

``data/customer_stats.parquet`` is written by ``gateway.demo.feature_repo.prepare_feature_repo``
from ``gateway.demo.data.customer_stats()``.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A card holder, c-0000 to c-9999.",
)

customer_stats_source = FileSource(
    name="customer_stats_source",
    # Relative to the repo folder (Feast joins it onto repo_path), not to the cwd.
    path="data/customer_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    ttl=timedelta(days=1),
    # Float64, not Float32: the server then returns the generator's values exactly (20.64,
    # not 20.639999389648438); the gateway casts to the model's FP32 itself.
    schema=[
        Field(name="avg_amount_30d", dtype=Float64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="chargeback_rate_90d", dtype=Float64),
        Field(name="account_age_days", dtype=Int64),
    ],
    online=True,
    source=customer_stats_source,
    description="Rolling card-activity statistics per customer.",
)
