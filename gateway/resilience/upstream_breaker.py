"""The breaker of one model upstream: :class:`CircuitBreaker` judged by a :class:`TripPolicy`.

The generic breaker opens on consecutive failures only; an upstream's may also open on a
failure rate or a slow-call rate, so this subclass times each call on the breaker's clock
and hands the outcome to the policy while closed. pybreaker has no such rules (its closed
state counts consecutive failures only), so the policy decides when to trip and the
transitions are still pybreaker's, made through the parent (its storage holds the state
and the consecutive-failure count, its listeners see every move). The half-open rules are
the parent's: at most ``half_open_max_calls`` trials at once, the first success closes, a
failure (or, with the slow-call rule on, a slow trial) opens again.

    with breaker.calling():       # CircuitOpen when not allowed, as for the parent
        answer = await post_infer(...)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pybreaker

from gateway.resilience.breaker import CircuitBreaker, Listener
from gateway.resilience.trip_policy import TripPolicy


def _every_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class UpstreamBreaker(CircuitBreaker):
    """A breaker whose closed state is judged by ``policy``; ``trip_reason`` says why it opened."""

    def __init__(
        self,
        name: str,
        policy: TripPolicy,
        *,
        reset_timeout: float = 5.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        listeners: Sequence[Listener] = (),
        is_failure: Callable[[BaseException], bool] = _every_exception,
        max_reset_timeout: float | None = None,
    ) -> None:
        super().__init__(
            name,
            fail_max=max(1, policy.consecutive),
            reset_timeout=reset_timeout,
            half_open_max_calls=half_open_max_calls,
            clock=clock,
            listeners=listeners,
            is_failure=is_failure,
            max_reset_timeout=max_reset_timeout,
        )
        self.policy = policy
        self.trip_reason: str | None = None

    @property
    def trials_in_flight(self) -> int:
        """Half-open trial calls admitted and not finished yet."""
        return self._trials

    def _outcome(self, failed: bool, seconds: float) -> None:
        self._record(failed, seconds)

    def record_success(self) -> None:
        self._record(False, 0.0)

    def record_failure(self) -> None:
        self._record(True, 0.0)

    def _record(self, failed: bool, seconds: float) -> None:
        # The stored state, not ``state``: an outcome never moves an open breaker.
        stored = self._storage.state
        if stored == pybreaker.STATE_HALF_OPEN:
            if failed or self.policy.is_slow(seconds):
                # Set before the transition: the listeners log the reason.
                self.trip_reason = "a half-open trial call " + ("failed" if failed else "was slow")
                self._open()
            else:
                self.policy.reset()
                self.trip_reason = None
                self._close()
        elif stored == pybreaker.STATE_CLOSED:
            self._count(failed)  # pybreaker's counter mirrors the policy's streak
            reason = self.policy.record(failed, seconds)
            if reason is not None:
                self.trip_reason = reason
                self.policy.reset()
                self._open()
