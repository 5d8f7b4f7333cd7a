"""The refresh timer: each model on its own period, and one failing refresh stops nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeClock

from gateway.service.quality import refresh_forever


class Monitors:
    def __init__(self, every: float, fail_first: bool = False) -> None:
        self.settings = SimpleNamespace(refresh_seconds=every, on_critical="flag")
        self.refreshed: list[float] = []
        self.fail_first = fail_first
        self.clock: FakeClock | None = None

    def refresh(self) -> None:
        assert self.clock is not None
        self.refreshed.append(self.clock())
        if self.fail_first and len(self.refreshed) == 1:
            raise RuntimeError("a bug in a monitor")

    def critical_store_inputs(self) -> list[str]:
        return []


def run(models: dict[str, Monitors], clock: FakeClock, ticks: int) -> list[float]:
    runtime: Any = SimpleNamespace(
        models={name: SimpleNamespace(name=name, quality=m) for name, m in models.items()}
    )
    for monitors in models.values():
        monitors.clock = clock
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == ticks:
            raise asyncio.CancelledError
        clock.advance(seconds)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(refresh_forever(lambda: runtime, clock, sleep))
    return pauses


def test_each_model_refreshes_on_its_own_period_and_a_failure_stops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    fast, slow = Monitors(0.5, fail_first=True), Monitors(2.0)
    pauses = run({"fast": fast, "slow": slow}, clock, ticks=9)
    assert set(pauses) == {0.5}
    assert fast.refreshed == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert slow.refreshed == [0.0, 2.0, 4.0]
    assert "data-quality refresh of model 'fast' failed" in caplog.text
