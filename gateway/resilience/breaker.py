"""An asyncio-correct circuit breaker on an injected monotonic clock.

pybreaker is not used: ``await breaker.call(coro_fn)`` records a success before the
coroutine runs, its half-open state lets every concurrent caller through, and it times
the reset on the wall clock (see STYLE.md). This class keeps the same state machine and
fixes the three:

    closed --(fail_max consecutive failures)--> open
    open --(reset_timeout elapsed on the clock)--> half_open
    half_open --(a trial succeeds)--> closed
    half_open --(a trial fails)--> open (the reset timer starts again)

While half-open, at most ``half_open_max_calls`` trial calls are in flight; other callers
are refused like in the open state. Usage, around the awaited call itself::

    with breaker.calling():          # raises CircuitOpen when the call is not allowed
        answer = await client.fetch()

An exception leaving the block counts as a failure when ``is_failure(exc)`` says so
(default: every ``Exception``); cancellation releases a trial slot without counting.
Listeners get ``(breaker, old_state, new_state)`` on every transition, for logs and metrics.
All bookkeeping is synchronous, so it is safe on one event loop without locks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from gateway.errors import CircuitOpen

BreakerState = Literal["closed", "open", "half_open"]
Listener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


def _every_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


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
    ) -> None:
        if fail_max < 1 or half_open_max_calls < 1 or reset_timeout <= 0:
            raise ValueError("fail_max and half_open_max_calls must be >= 1, reset_timeout > 0")
        self.name = name
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._listeners = tuple(listeners)
        self._is_failure = is_failure
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        self._generation = 0  # bumped on every transition; outcomes of older calls are ignored

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose timeout has passed reads half-open."""
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_timeout:
            self._move("half_open")
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

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
        self._failures = 0
        if self._state == "half_open":
            self._move("closed")

    def record_failure(self) -> None:
        """A call failed: count it; a half-open breaker, or the last allowed failure, opens."""
        if self._state == "half_open":
            self._open()
        elif self._state == "closed":
            self._failures += 1
            if self._failures >= self.fail_max:
                self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._move("open")

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._trials = 0
        self._generation += 1
        if old != new:
            for listener in self._listeners:
                listener(self, old, new)
