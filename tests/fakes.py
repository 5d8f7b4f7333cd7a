"""Fakes behind the seams the real parts use: clocks, the feature store, model answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from gateway.features.feast_client import FeatureValue

NOW = 1_800_000_000.0  # the fake wall clock's "now" (event times are NOW - age)


class FakeStore:
    """Answers from ``rows`` (entity -> (values, age in seconds)), or raises ``error``."""

    url = "http://fake-store"
    retries = hedges = hedges_over_budget = 0

    def __init__(self) -> None:
        self.rows: dict[str, tuple[dict[str, Any], float]] = {}
        self.error: Exception | None = None
        self.calls: list[list[str]] = []
        self.budgets: list[float | None] = []
        self.health_checks = 0
        # Called at each lookup (a test moves its fake clock here: the lookup's duration).
        self.on_call: Callable[[], None] | None = None

    async def healthy(self) -> bool:
        self.health_checks += 1
        await asyncio.sleep(0)
        return self.error is None

    async def online_features(
        self,
        refs: Sequence[str],
        entity_key: str,
        entity_ids: Sequence[str],
        within_seconds: float | None = None,
    ) -> dict[str, list[FeatureValue]]:
        self.calls.append(list(entity_ids))
        self.budgets.append(within_seconds)
        if self.on_call is not None:
            self.on_call()
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        out: dict[str, list[FeatureValue]] = {ref: [] for ref in refs}
        for entity in entity_ids:
            row = self.rows.get(entity)
            for ref in refs:
                if row is None:
                    out[ref].append(FeatureValue(None, "NOT_FOUND", 0.0))
                else:
                    out[ref].append(FeatureValue(row[0][ref], "PRESENT", NOW - row[1]))
        return out


class FakeClock:
    """A clock moved only by the tests (and the fakes they drive)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fraud_answer(batch: int = 1, fraud: float = 0.1) -> bytes:
    """An OIP answer keeping the fraud card's output contract for ``batch`` rows."""
    return orjson.dumps(
        {
            "model_name": "fraud",
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [batch], "data": [0] * batch},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [batch, 2],
                    "data": [1 - fraud, fraud] * batch,
                },
            ],
        }
    )
