"""Added latency comes from rounds in which the gateway and direct take turns; below zero it
is noise, never a goal met."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loadtest import bench_latency, generator
from loadtest.bench_latency import LatencyTarget, added, figures, interleaved, round_order
from loadtest.bench_targets import Verdict, evaluate
from loadtest.generator import Record


def test_the_turn_order_reverses_every_other_round() -> None:
    assert round_order(["direct", "gw"], 0) == ["direct", "gw"]
    assert round_order(["direct", "gw"], 1) == ["gw", "direct"]
    assert round_order(["a", "b", "c"], 2) == ["a", "b", "c"]


def test_targets_take_turns_in_every_round_each_with_its_own_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, float, object]] = []

    async def fake_run(base: str, payloads: Any, rate: float, duration: float, *,
                       session: object) -> list[Record]:  # fmt: skip
        calls.append((base, duration, session))
        return [Record(0.0, 0.001 * len(calls), 200, 0)]

    monkeypatch.setattr(generator, "run", fake_run)
    targets = [LatencyTarget("direct", "d", []), LatencyTarget("gw", "g", [])]
    out = asyncio.run(interleaved(targets, 500, 3, 2.0))
    bases = [base for base, _, _ in calls]
    # A warm-up each (not kept), then direct and the gateway alternating, order flipped.
    assert bases == ["d", "g", "d", "g", "g", "d", "d", "g"]
    assert [d for _, d, _ in calls[:2]] == [bench_latency.WARMUP_SECONDS] * 2
    assert all(d == 2.0 for _, d, _ in calls[2:])
    assert {id(s) for b, _, s in calls if b == "d"} != {id(s) for b, _, s in calls if b == "g"}
    assert len({id(s) for b, _, s in calls if b == "d"}) == 1  # warm across its turns
    assert [len(rounds) for rounds in out.values()] == [3, 3]
    assert out["direct"][1][0].latency == pytest.approx(0.006)  # round 2: direct went second


def _records(latencies_ms: list[float], failed: int = 0) -> list[Record]:
    ok = [Record(0.0, ms / 1000, 200, 0) for ms in latencies_ms]
    return ok + [Record(0.0, 5.0, 0, 0)] * failed


def test_percentiles_pool_every_round_and_failures_are_counted() -> None:
    result = figures([_records([1.0] * 99 + [50.0]), _records([2.0] * 100, failed=2)])
    # 99 answers of 1 ms, 100 of 2 ms, one of 50 ms: the pool's percentiles, not a round's.
    assert result["latency_ms"] == {"p50": 2.0, "p90": 2.0, "p99": 2.0, "p99.9": 50.0}
    assert result["rounds_ms"] == [{"p50": 1.0, "p99": 1.0}, {"p50": 2.0, "p99": 2.0}]
    assert result["failures"]["failed"] == 2 and result["failures"]["requests"] == 202


def test_added_is_ours_minus_direct_and_may_be_negative() -> None:
    ours = {"p50": 2.0, "p90": 3.0, "p99": 10.0}
    assert added(ours, {"p50": 1.5, "p99": 94.606}) == {"p50": 0.5, "p99": -84.606}
    assert added(ours, {}) == {}


def _verdict(added_ms: dict[str, float], point: str) -> Verdict:
    report = {"upstreams": {"model-server": {"gateway-v2-sampled-10": {
        "added_ms_at_500": added_ms}}}}  # fmt: skip
    target = f"gateway-v2-sampled-10 added {point} @500 req/s"
    (row,) = [r for r in evaluate(report, ("model-server",)) if r.target == target]
    return row.by_upstream["model-server"]


def test_negative_added_latency_is_noise_never_met() -> None:
    # The review's case: the direct run's p99 of 258 ms made the gateway's added p99 -84.6 ms.
    assert _verdict({"p50": 0.3, "p99": -84.606}, "p99") == Verdict("-84.606 ms", "within noise")
    assert _verdict({"p50": -0.001, "p99": 1.0}, "p50").status == "within noise"
    assert _verdict({"p50": 0.0, "p99": 1.0}, "p50").status == "met"
    assert _verdict({"p50": 0.3, "p99": 2.5}, "p99").status == "missed"
