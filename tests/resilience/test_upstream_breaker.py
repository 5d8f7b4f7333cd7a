"""The upstream breaker's trip rules and half-open limit, on a fake clock with real coroutines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeClock
from support import runtime_of, write_config

from gateway.errors import CircuitOpen, InvalidInput, UpstreamUnavailable
from gateway.resilience.guards import is_upstream_failure
from gateway.resilience.trip_policy import TripPolicy
from gateway.resilience.upstream_breaker import UpstreamBreaker
from gateway.settings import load_config


def make(
    clock: FakeClock, half_open_max_calls: int = 1, **rules: object
) -> tuple[UpstreamBreaker, list[tuple[str, str]]]:
    moves: list[tuple[str, str]] = []
    policy = TripPolicy(clock=clock, **rules)  # type: ignore[arg-type]
    breaker = UpstreamBreaker(
        "fraud/v1",
        policy,
        reset_timeout=5.0,
        half_open_max_calls=half_open_max_calls,
        clock=clock,
        listeners=[lambda b, old, new: moves.append((old, new))],
        is_failure=is_upstream_failure,
    )
    return breaker, moves


async def call(
    breaker: UpstreamBreaker, clock: FakeClock, *, fail: bool = False, seconds: float = 0.0
) -> None:
    """One guarded call that takes ``seconds`` on the fake clock and fails when asked."""
    try:
        with breaker.calling():
            await asyncio.sleep(0)
            clock.now += seconds
            if fail:
                raise UpstreamUnavailable("v1", "connection refused")
    except UpstreamUnavailable:
        pass


def test_consecutive_failures_open_it() -> None:
    clock = FakeClock()
    breaker, moves = make(clock, consecutive=3)

    async def scenario() -> None:
        await call(breaker, clock, fail=True)
        await call(breaker, clock, fail=True)
        await call(breaker, clock)  # a success breaks the streak
        for _ in range(3):
            await call(breaker, clock, fail=True)

    asyncio.run(scenario())
    assert moves == [("closed", "open")]
    assert breaker.trip_reason == "3 consecutive failures"


def test_client_errors_never_count() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, consecutive=1)

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(InvalidInput), breaker.calling():
                raise InvalidInput("bad row")

    asyncio.run(scenario())
    assert breaker.state == "closed"


def test_failure_rate_waits_for_the_minimum_then_judges_the_count_window() -> None:
    clock = FakeClock()
    breaker, _ = make(
        clock, consecutive=0, failure_rate=0.5, minimum_calls=6, window_kind="count", window_size=6
    )

    async def scenario() -> None:
        for failed in (True, False, True, False, True):  # 3 of 5: too few calls to judge
            await call(breaker, clock, fail=failed)
        assert breaker.state == "closed"
        await call(breaker, clock)  # 3 of 6 = 50%
        assert breaker.state == "open"

    asyncio.run(scenario())
    assert breaker.trip_reason == "failure rate 50% >= 50% over 6 calls"


def test_a_count_window_forgets_old_calls() -> None:
    policy = TripPolicy(consecutive=0, failure_rate=0.5, minimum_calls=4, window_size=4)
    assert [policy.record(f, 0.0) for f in (True, True, False, False)] == [None] * 3 + [
        "failure rate 50% >= 50% over 4 calls"
    ]
    policy.reset()
    # Two early failures scroll out of a 4-call window before it can judge them.
    results = [policy.record(f, 0.0) for f in (True, False, False, False, False, True)]
    assert results == [None] * 6


def test_a_time_window_forgets_calls_older_than_its_size() -> None:
    clock = FakeClock()
    policy = TripPolicy(
        consecutive=0,
        failure_rate=0.5,
        minimum_calls=3,
        window_kind="time",
        window_size=10.0,
        clock=clock,
    )
    assert policy.record(True, 0.0) is None
    assert policy.record(True, 0.0) is None
    clock.now += 11  # both failures leave the window
    assert policy.record(False, 0.0) is None
    assert policy.record(False, 0.0) is None
    assert policy.record(True, 0.0) is None  # 1 of 3
    assert policy.record(True, 0.0) == "failure rate 50% >= 50% over 4 calls"


def test_slow_calls_open_it_even_when_they_succeed() -> None:
    clock = FakeClock()
    breaker, _ = make(
        clock, consecutive=0, slow_rate=0.5, slow_call_seconds=0.2, minimum_calls=4, window_size=4
    )

    async def scenario() -> None:
        await call(breaker, clock, seconds=0.01)
        await call(breaker, clock, seconds=0.3)
        await call(breaker, clock, seconds=0.01)
        assert breaker.state == "closed"
        await call(breaker, clock, seconds=0.25)

    asyncio.run(scenario())
    assert breaker.state == "open"
    assert breaker.trip_reason is not None
    assert breaker.trip_reason.startswith("slow-call rate 50%")


def test_half_open_admits_only_the_configured_trials_concurrently() -> None:
    clock = FakeClock()
    breaker, moves = make(clock, half_open_max_calls=2, consecutive=1)

    async def scenario() -> None:
        await call(breaker, clock, fail=True)
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen):
            await call(breaker, clock)
        clock.now += 5.0
        gate = asyncio.Event()
        admitted = 0
        refused = 0

        async def trial() -> None:
            nonlocal admitted, refused
            try:
                with breaker.calling():
                    admitted += 1
                    await gate.wait()
            except CircuitOpen:
                refused += 1

        tasks = [asyncio.create_task(trial()) for _ in range(6)]
        await asyncio.sleep(0)
        assert (admitted, refused) == (2, 4)
        assert breaker.trials_in_flight == 2
        gate.set()
        await asyncio.gather(*tasks)
        assert breaker.state == "closed"
        assert breaker.trip_reason is None

    asyncio.run(scenario())
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_or_slow_trial_opens_it_again() -> None:
    clock = FakeClock()
    breaker, moves = make(clock, consecutive=1, slow_rate=0.9, slow_call_seconds=1.0)

    async def scenario() -> None:
        await call(breaker, clock, fail=True)
        clock.now += 5.0
        await call(breaker, clock, fail=True)
        assert breaker.state == "open"
        assert breaker.trip_reason == "a half-open trial call failed"
        clock.now += 5.0
        await call(breaker, clock, seconds=2.0)
        assert breaker.trip_reason == "a half-open trial call was slow"

    asyncio.run(scenario())
    assert moves.count(("half_open", "open")) == 2


def test_a_cancelled_trial_frees_its_slot_without_counting() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, consecutive=1)

    async def scenario() -> None:
        await call(breaker, clock, fail=True)
        clock.now += 5.0

        async def hang() -> None:
            with breaker.calling():
                await asyncio.Event().wait()

        task = asyncio.create_task(hang())
        await asyncio.sleep(0)
        assert breaker.trials_in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.state == "half_open"
        assert breaker.trials_in_flight == 0

    asyncio.run(scenario())


def test_every_routed_upstream_gets_its_own_guard(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        '    canary: {name: fraud-v2, url: "http://127.0.0.1:10", timeout_ms: 700}\n'
        "    breaker: {consecutive_failures: 2}\n",
    )
    router = runtime_of(load_config(path), clock=FakeClock()).models["fraud"].router
    primary, canary = router.primary, router.canary
    assert canary is not None
    assert (primary.name, canary.name) == ("fraud-v1", "fraud-v2")
    assert primary.breaker is not canary.breaker
    assert canary.breaker.name == "fraud/fraud-v2"
    assert (primary.per_try_seconds, canary.per_try_seconds) == (2.0, 0.7)


def test_replicas_take_turns_and_an_open_one_is_skipped(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", "    breaker: {consecutive_failures: 1}\n")
    path.write_text(
        path.read_text().replace(
            "timeout_ms: 2000}", 'timeout_ms: 2000, replicas: ["http://127.0.0.1:10"]}'
        )
    )
    clock = FakeClock()
    guard = runtime_of(load_config(path), clock=clock).models["fraud"].router.primary
    first, second = guard.endpoints
    assert second.upstream.name == "fraud-v1#2"
    assert second.upstream.infer_url == "http://127.0.0.1:10/v2/models/fraud/infer"
    assert [guard.pick() for _ in range(3)] == [first, second, first]
    assert guard.pick(avoid=second) is first  # a retry moves on to the other replica
    first.breaker.record_failure()  # opens: one failure is its threshold
    assert [guard.pick() for _ in range(2)] == [second, second]
    assert guard.pick(avoid=second) is second  # no other choice: the same one again
    second.breaker.record_failure()
    assert guard.pick() is None
    clock.now += 10  # both half-open after the reset timeout
    assert guard.pick() is not None
