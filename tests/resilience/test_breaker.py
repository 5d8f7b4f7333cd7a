"""The circuit breaker's state machine on a fake clock, with real coroutines."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeClock

from gateway.errors import CircuitOpen
from gateway.resilience.breaker import CircuitBreaker


class Boom(Exception):
    pass


def make(clock: FakeClock, **kw: object) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    moves: list[tuple[str, str]] = []
    options = {"fail_max": 3, "reset_timeout": 10.0, "half_open_max_calls": 1} | kw
    breaker = CircuitBreaker(
        "store",
        clock=clock,
        listeners=[lambda b, old, new: moves.append((old, new))],
        **options,  # type: ignore[arg-type]
    )
    return breaker, moves


async def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom), breaker.calling():
        await asyncio.sleep(0)
        raise Boom


async def succeed(breaker: CircuitBreaker) -> None:
    with breaker.calling():
        await asyncio.sleep(0)


def test_awaited_failures_open_it_and_an_open_breaker_calls_nothing() -> None:
    clock = FakeClock()
    breaker, moves = make(clock)

    async def scenario() -> None:
        await fail(breaker)
        await fail(breaker)
        await succeed(breaker)  # a success resets the consecutive count
        for _ in range(3):
            await fail(breaker)
        assert breaker.state == "open"
        refused = r"circuit 'store' is open; next trial in 10\.0 s"
        with pytest.raises(CircuitOpen, match=refused), breaker.calling():
            raise AssertionError("must not be called")

    asyncio.run(scenario())
    assert moves == [("closed", "open")]


def test_half_open_admits_a_limited_number_of_trials_and_a_success_closes_it() -> None:
    clock = FakeClock()
    breaker, moves = make(clock, half_open_max_calls=2)

    async def scenario() -> None:
        for _ in range(3):
            await fail(breaker)
        clock.now += 9.9
        assert breaker.state == "open"
        clock.now += 0.2
        assert breaker.state == "half_open"
        gate = asyncio.Event()
        admitted = 0

        async def trial() -> None:
            nonlocal admitted
            with breaker.calling():
                admitted += 1
                await gate.wait()

        tasks = [asyncio.create_task(trial()) for _ in range(2)]
        await asyncio.sleep(0)
        assert admitted == 2
        # The third concurrent caller is refused.
        with pytest.raises(CircuitOpen), breaker.calling():
            pass
        gate.set()
        await asyncio.gather(*tasks)
        assert breaker.state == "closed"

    asyncio.run(scenario())
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_trial_reopens_and_restarts_the_timer() -> None:
    clock = FakeClock()
    breaker, _ = make(clock)

    async def scenario() -> None:
        for _ in range(3):
            await fail(breaker)
        clock.now += 10
        await fail(breaker)
        assert breaker.state == "open"
        assert breaker.retry_in() == pytest.approx(10.0)

    asyncio.run(scenario())


def test_a_slow_call_admitted_before_the_breaker_opened_does_not_close_it() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, fail_max=1)

    async def scenario() -> None:
        gate = asyncio.Event()

        async def slow() -> None:
            with breaker.calling():
                await gate.wait()

        task = asyncio.create_task(slow())
        await asyncio.sleep(0)
        await fail(breaker)
        gate.set()
        await task
        assert breaker.state == "open"

    asyncio.run(scenario())


def test_cancellation_frees_the_trial_slot_without_counting() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, fail_max=1)

    async def scenario() -> None:
        await fail(breaker)
        clock.now += 10

        async def hang() -> None:
            with breaker.calling():
                await asyncio.Event().wait()

        task = asyncio.create_task(hang())
        await asyncio.sleep(0)
        assert not breaker.allows_call()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.state == "half_open" and breaker.allows_call()

    asyncio.run(scenario())


def test_errors_that_are_not_failures_are_not_counted() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, fail_max=1, is_failure=lambda exc: not isinstance(exc, KeyError))
    with pytest.raises(KeyError), breaker.calling():
        raise KeyError("x")
    assert breaker.state == "closed"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="fail_max"):
        CircuitBreaker("x", fail_max=0)


def test_the_open_interval_doubles_after_each_failed_trial_and_resets_on_close() -> None:
    clock = FakeClock()
    breaker, moves = make(clock, fail_max=1, reset_timeout=0.5, max_reset_timeout=2.0)

    async def scenario() -> list[float]:
        waits = []
        await fail(breaker)  # closed -> open, 0.5 s
        for _ in range(4):
            waits.append(breaker.retry_in())
            clock.advance(breaker.retry_in())
            await fail(breaker)  # the trial fails: open again, for longer
        waits.append(breaker.retry_in())
        clock.advance(breaker.retry_in())
        await succeed(breaker)  # the trial succeeds: closed, back to the first interval
        await fail(breaker)
        waits.append(breaker.retry_in())
        return waits

    assert asyncio.run(scenario()) == [0.5, 1.0, 2.0, 2.0, 2.0, 0.5]
    assert moves[-2:] == [("half_open", "closed"), ("closed", "open")]


def test_without_a_maximum_the_open_interval_stays() -> None:
    clock = FakeClock()
    breaker, _ = make(clock, fail_max=1, reset_timeout=0.5)

    async def scenario() -> list[float]:
        await fail(breaker)
        clock.advance(0.5)
        await fail(breaker)
        return [breaker.retry_in()]

    assert asyncio.run(scenario()) == [0.5]
    with pytest.raises(ValueError, match="max_reset_timeout"):
        CircuitBreaker("x", reset_timeout=2.0, max_reset_timeout=1.0)
