"""A circuit breaker for asyncio: pybreaker's state machine, our admission and clock.

pybreaker owns the state: one :class:`pybreaker.CircuitBreaker` per breaker holds the
state name and the consecutive-failure counter in its storage, and every transition is
made through its API (``open()``, ``half_open()``, ``close()``), so its listeners fire
and its storage is the only record of the state. Our listeners ``(breaker, old, new)``,
with states ``"closed" | "open" | "half_open"``, are relayed from a pybreaker
``CircuitBreakerListener``.

This module adds what pybreaker gets wrong for an asyncio gateway (the three pitfalls,
pinned down in ``tests/resilience/test_pybreaker_pitfalls.py``):

1. ``await breaker.call(coro_fn)`` records a success when ``coro_fn()`` returns its
   coroutine, before it runs, so awaited failures never count (``call_async`` needs
   Tornado). Here the guard is a context manager around the awaited call itself, and we
   never route a call through pybreaker's ``call()``.
2. Half-open, pybreaker lets every concurrent caller through. Here at most
   ``half_open_max_calls`` trial calls are in flight; other callers are refused.
3. pybreaker times the reset with ``datetime.now()`` (the wall clock, which jumps with NTP;
   no clock can be injected). Here the open -> half-open move is decided on the injected
   monotonic ``clock``, stamped in the storage when pybreaker opens the breaker, and made
   with pybreaker's ``half_open()``; pybreaker's own wall-clock check never runs.

::

    closed --(fail_max consecutive failures)--> open
    open --(reset_timeout elapsed on the clock)--> half_open
    half_open --(a trial succeeds)--> closed
    half_open --(a trial fails)--> open (the reset timer starts again)

With ``max_reset_timeout`` the open interval grows: each failed trial doubles it, up to
that bound, and closing brings it back to ``reset_timeout``. A short first interval then
costs a brief blip of the dependency little, while a dependency that stays down is tried
less and less often.

Usage, around the awaited call itself::

    with breaker.calling():          # raises CircuitOpen when the call is not allowed
        answer = await client.fetch()

An exception leaving the block counts as a failure when ``is_failure(exc)`` says so
(default: every ``Exception``); cancellation releases a trial slot without counting.
All bookkeeping is synchronous, so it is safe on one event loop; the hot path (a closed
breaker's ``calling()`` and ``state``) takes no lock: only pybreaker's transitions take
its ``RLock``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Literal

import pybreaker

from gateway.errors import CircuitOpen

BreakerState = Literal["closed", "open", "half_open"]
Listener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]

# pybreaker spells half-open with a dash.
_OURS: dict[str, BreakerState] = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


def _every_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class _ClockedStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's in-memory storage that also stamps each opening on our monotonic clock.

    pybreaker's ``open()`` sets ``opened_at`` (a wall-clock datetime, kept for pybreaker)
    and then the state; the stamp taken here, ``opened_at_clock``, is what the reset
    timeout is measured from, whoever opened the breaker.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._clock = clock
        self._wall_opened_at: datetime | None = None
        self.opened_at_clock = 0.0

    @property
    def opened_at(self) -> datetime | None:
        return self._wall_opened_at

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._wall_opened_at = when
        self.opened_at_clock = self._clock()


class _Relay(pybreaker.CircuitBreakerListener):
    """pybreaker's ``state_change`` -> the owning breaker's bookkeeping and listeners."""

    def __init__(self, owner: CircuitBreaker) -> None:
        self._owner = owner

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._owner._moved(old_state.name if old_state is not None else None, new_state.name)


class CircuitBreaker:
    """One breaker guarding one dependency (a feature store, an upstream)."""

    def __init__(
        self,
        name: str,
        *,
        fail_max: int = 5,
        reset_timeout: float = 10.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        listeners: Sequence[Listener] = (),
        is_failure: Callable[[BaseException], bool] = _every_exception,
        max_reset_timeout: float | None = None,
    ) -> None:
        if fail_max < 1 or half_open_max_calls < 1 or reset_timeout <= 0:
            raise ValueError("fail_max and half_open_max_calls must be >= 1, reset_timeout > 0")
        if max_reset_timeout is not None and max_reset_timeout < reset_timeout:
            raise ValueError("max_reset_timeout must be at least reset_timeout")
        self.name = name
        self.base_reset_timeout = reset_timeout
        self.max_reset_timeout = max_reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._listeners = tuple(listeners)
        self._is_failure = is_failure
        self._storage = _ClockedStorage(clock)
        self._circuit = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            listeners=[_Relay(self)],
            state_storage=self._storage,
            name=name,
        )
        self._trials = 0
        self._generation = 0  # bumped on every transition; outcomes of older calls are ignored

    @property
    def circuit(self) -> pybreaker.CircuitBreaker:
        """The pybreaker breaker holding the state; read it, add listeners, never ``call()`` it."""
        return self._circuit

    @property
    def fail_max(self) -> int:
        return self._circuit.fail_max

    @fail_max.setter
    def fail_max(self, number: int) -> None:
        self._circuit.fail_max = number

    @property
    def reset_timeout(self) -> float:
        return self._circuit.reset_timeout

    @reset_timeout.setter
    def reset_timeout(self, seconds: float) -> None:
        self._circuit.reset_timeout = seconds

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose timeout has passed reads half-open."""
        stored = self._storage.state
        if stored == pybreaker.STATE_CLOSED:  # the hot path: one attribute read
            return "closed"
        if stored == pybreaker.STATE_OPEN:
            if self._clock() - self._storage.opened_at_clock < self.reset_timeout:
                return "open"
            self._circuit.half_open()
            stored = self._storage.state
        return _OURS[stored]

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed (pybreaker's fail counter)."""
        return self._storage.counter

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self._storage.state != pybreaker.STATE_OPEN:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._storage.opened_at_clock))

    def half_open_now(self) -> None:
        """Let the next call through as a trial before the open interval ends: a health
        check saw the dependency answer again. A failed trial reopens it, as any does."""
        if self._storage.state == pybreaker.STATE_OPEN:
            self._circuit.half_open()

    def allows_call(self) -> bool:
        """True when :meth:`calling` would let a call through now (reserves nothing)."""
        state = self.state
        return state == "closed" or (
            state == "half_open" and self._trials < self.half_open_max_calls
        )

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """Guard one call; raise :class:`CircuitOpen` without calling when not allowed.

        The outcome counts only against the state the call was admitted in: a slow call
        admitted while closed that ends after the breaker opened neither closes it nor
        restarts its timer.
        """
        state = self.state
        trial = state == "half_open"
        if state == "open" or (trial and self._trials >= self.half_open_max_calls):
            raise CircuitOpen(self.name, self.retry_in())
        generation = self._generation
        if trial:
            self._trials += 1
        started = self._clock()
        try:
            yield
        except BaseException as exc:
            if generation == self._generation:
                if trial:
                    self._trials -= 1
                if self._is_failure(exc):
                    self._outcome(True, self._clock() - started)
            raise
        else:
            if generation == self._generation:
                if trial:
                    self._trials -= 1
                self._outcome(False, self._clock() - started)

    def _outcome(self, failed: bool, seconds: float) -> None:
        """One admitted call's outcome; subclasses with timing rules (slow calls) override it."""
        if failed:
            self.record_failure()
        else:
            self.record_success()

    def record_success(self) -> None:
        """A call succeeded: reset the failure count; a half-open breaker closes."""
        storage = self._storage
        if storage.counter:
            storage.reset_counter()
        if storage.state == pybreaker.STATE_HALF_OPEN:
            self._close()

    def record_failure(self) -> None:
        """A call failed: count it; a half-open breaker, or the last allowed failure, opens."""
        stored = self._storage.state
        if stored == pybreaker.STATE_HALF_OPEN:
            self._open()
        elif stored == pybreaker.STATE_CLOSED:
            self._count(True)
            if self._storage.counter >= self.fail_max:
                self._open()

    def _count(self, failed: bool) -> None:
        """Keep pybreaker's consecutive-failure counter (it counts only in ``call()``)."""
        if failed:
            self._storage.increment_counter()
        elif self._storage.counter:
            self._storage.reset_counter()

    def _open(self) -> None:
        # pybreaker keeps its counter while open (closing resets it); ours counts only while
        # closed, so an open breaker reads 0 failures, as it always has.
        self._storage.reset_counter()
        if self.max_reset_timeout is not None and self._storage.state == pybreaker.STATE_HALF_OPEN:
            self.reset_timeout = min(2 * self.reset_timeout, self.max_reset_timeout)
        self._circuit.open()

    def _close(self) -> None:
        self.reset_timeout = self.base_reset_timeout
        self._circuit.close()

    def _moved(self, old: str | None, new: str) -> None:
        """pybreaker changed the state (through us or directly): a new generation."""
        self._trials = 0
        self._generation += 1
        if old is None or old == new or not self._listeners:
            return
        # pybreaker notifies before it stores the new state (``self.state =
        # storage.state = new`` assigns left to right). Store it for our listeners, so one
        # reading ``breaker.state`` sees the state it is told about, then put the old name
        # back: pybreaker's cached state object must still match the storage until it
        # stores the new state itself, or its ``state`` property would re-notify.
        storage = self._storage
        storage.state = new
        try:
            for listener in self._listeners:
                listener(self, _OURS[old], _OURS[new])
        finally:
            storage.state = old
