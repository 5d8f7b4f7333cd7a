"""pybreaker's three pitfalls for an asyncio gateway, and how our breaker handles each.

Each pitfall has a pair of tests: the first pins pybreaker's own behaviour (it fails if
pybreaker changes, a sign that our workaround may no longer be needed), the second shows
our breaker, which keeps pybreaker as its state machine, does the right thing.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, timedelta, tzinfo

import pybreaker
import pytest
from fakes import FakeClock

from gateway.errors import CircuitOpen
from gateway.resilience.breaker import BreakerState, CircuitBreaker
from gateway.resilience.trip_policy import TripPolicy
from gateway.resilience.upstream_breaker import UpstreamBreaker

# Our state names as pybreaker spells them.
PYBREAKER_NAME = {"closed": "closed", "open": "open", "half_open": "half-open"}


class Boom(Exception):
    pass


async def failing() -> None:
    await asyncio.sleep(0)
    raise Boom


class WallClock:
    """A wall clock standing still until moved, installed as the ``datetime`` pybreaker reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.current = datetime(2030, 1, 1, tzinfo=UTC)
        wall = self

        class Frozen(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> Frozen:
                return wall.current  # type: ignore[return-value]

        monkeypatch.setattr(pybreaker, "datetime", Frozen)


# 1. Failures of awaited coroutines.


def test_pybreaker_counts_an_awaited_failure_as_a_success() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60)

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(Boom):
                # call() returns the coroutine and records a success before it runs.
                await cb.call(failing)

    asyncio.run(scenario())
    assert cb.current_state == pybreaker.STATE_CLOSED
    assert cb.fail_counter == 0


def test_ours_counts_the_failures_of_awaited_calls_and_trips() -> None:
    breaker = CircuitBreaker("store", fail_max=2, reset_timeout=60.0, clock=FakeClock())

    async def scenario() -> None:
        with pytest.raises(Boom), breaker.calling():
            await failing()
        assert breaker.failures == breaker.circuit.fail_counter == 1
        with pytest.raises(Boom), breaker.calling():
            await failing()
        assert breaker.state == "open"
        with pytest.raises(CircuitOpen), breaker.calling():
            raise AssertionError("must not be called")

    asyncio.run(scenario())
    assert breaker.circuit.current_state == pybreaker.STATE_OPEN


# 2. Half-open admission.


async def concurrent_trials(
    guard: CircuitBreaker | pybreaker.CircuitBreaker, callers: int
) -> tuple[int, int]:
    """Start ``callers`` calls at once through ``guard.calling()``: (admitted, refused)."""
    gate = asyncio.Event()
    admitted = refused = 0

    async def trial() -> None:
        nonlocal admitted, refused
        try:
            with guard.calling():
                admitted += 1
                await gate.wait()
        except (CircuitOpen, pybreaker.CircuitBreakerError):
            refused += 1

    tasks = [asyncio.create_task(trial()) for _ in range(callers)]
    await asyncio.sleep(0)
    inside = (admitted, refused)
    gate.set()
    await asyncio.gather(*tasks)
    return inside


def test_pybreaker_lets_every_concurrent_caller_through_when_half_open() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60)
    cb.half_open()
    assert asyncio.run(concurrent_trials(cb, 5)) == (5, 0)
    assert cb.current_state == pybreaker.STATE_CLOSED


def test_ours_admits_at_most_half_open_max_calls_trials_and_refuses_the_rest() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "store", fail_max=1, reset_timeout=10.0, half_open_max_calls=2, clock=clock
    )
    breaker.record_failure()
    clock.now += 10.0
    assert breaker.state == "half_open"
    assert breaker.circuit.current_state == pybreaker.STATE_HALF_OPEN
    assert asyncio.run(concurrent_trials(breaker, 5)) == (2, 3)
    assert breaker.state == "closed"


# 3. The reset timer's clock.


def test_pybreaker_times_the_reset_on_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "clock" not in inspect.signature(pybreaker.CircuitBreaker).parameters
    wall = WallClock(monkeypatch)
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=10, state_storage=storage)
    cb.open()
    assert isinstance(storage.opened_at, datetime)
    assert storage.opened_at == wall.current
    wall.current += timedelta(seconds=9)
    with pytest.raises(pybreaker.CircuitBreakerError):
        cb.call(lambda: None)
    # Only the wall clock moved: pybreaker lets the trial through and closes.
    wall.current += timedelta(seconds=1)
    assert cb.call(lambda: "answer") == "answer"
    assert cb.current_state == pybreaker.STATE_CLOSED


def test_ours_moves_to_half_open_on_the_injected_clock_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wall = WallClock(monkeypatch)
    clock = FakeClock()
    breaker = CircuitBreaker("store", fail_max=1, reset_timeout=10.0, clock=clock)
    breaker.record_failure()
    assert breaker.state == "open"
    wall.current += timedelta(hours=1)  # a wall-clock jump (NTP, a VM resumed): no effect
    clock.now += 9.75
    assert breaker.state == "open"
    assert breaker.retry_in() == 0.25
    assert breaker.circuit.current_state == pybreaker.STATE_OPEN
    wall.current -= timedelta(hours=2)  # nor when it steps back
    clock.now += 0.25
    assert breaker.state == "half_open"
    assert breaker.circuit.current_state == pybreaker.STATE_HALF_OPEN


# pybreaker is the state machine.


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.moves: list[tuple[str | None, str]] = []

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.moves.append((old_state.name if old_state else None, new_state.name))


def test_our_listeners_and_pybreakers_see_every_move_and_the_states_agree() -> None:
    clock = FakeClock()
    ours: list[tuple[BreakerState, BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        "store",
        fail_max=2,
        reset_timeout=10.0,
        clock=clock,
        listeners=[lambda b, old, new: ours.append((old, new, b.state))],
    )
    theirs = Recorder()
    circuit = breaker.circuit
    circuit.add_listener(theirs)

    def agree() -> None:
        state = breaker.state
        assert circuit.current_state == circuit.state.name == PYBREAKER_NAME[state]
        assert circuit.fail_counter == breaker.failures

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(Boom), breaker.calling():
                await failing()
            agree()
        clock.now += 10.0
        agree()
        with pytest.raises(Boom), breaker.calling():  # a failed trial
            await failing()
        agree()
        clock.now += 10.0
        with breaker.calling():  # a successful trial
            await asyncio.sleep(0)
        agree()

    asyncio.run(scenario())
    # A move made on the pybreaker object directly is ours too, timed on our clock.
    circuit.open()
    agree()
    assert breaker.state == "open" and breaker.retry_in() == 10.0
    assert not breaker.allows_call()
    circuit.close()
    agree()

    moves = [("closed", "open"), ("open", "half_open"), ("half_open", "open")]
    moves += [("open", "half_open"), ("half_open", "closed"), ("closed", "open")]
    moves += [("open", "closed")]
    # Each listener of ours reads the new state from the breaker while it is told.
    assert ours == [(old, new, new) for old, new in moves]
    assert theirs.moves == [(PYBREAKER_NAME[old], PYBREAKER_NAME[new]) for old, new in moves]


def test_an_upstream_breakers_policy_trips_pybreakers_state_machine() -> None:
    clock = FakeClock()
    policy = TripPolicy(consecutive=0, failure_rate=0.5, minimum_calls=2, clock=clock)
    breaker = UpstreamBreaker("fraud/v1", policy, reset_timeout=5.0, clock=clock)
    theirs = Recorder()
    breaker.circuit.add_listener(theirs)
    breaker.record_success()
    breaker.record_failure()
    assert breaker.trip_reason == "failure rate 50% >= 50% over 2 calls"
    assert breaker.circuit.current_state == pybreaker.STATE_OPEN
    clock.now += 5.0
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.circuit.current_state == pybreaker.STATE_CLOSED
    assert theirs.moves == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
