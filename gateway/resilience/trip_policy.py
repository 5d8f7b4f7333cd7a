"""When a closed breaker opens: consecutive failures, a failure rate, a slow-call rate.

A :class:`TripPolicy` sees every call admitted while the breaker is closed, as
``record(failed, seconds)``, and answers the reason to open (or ``None``). The rate rules
judge a sliding window, by count (the last N calls) or by time (the calls of the last N
seconds), and only once it holds ``minimum_calls`` calls, so one early failure never trips.

    >>> p = TripPolicy(consecutive=0, failure_rate=0.5, minimum_calls=4)
    >>> [p.record(failed, 0.01) for failed in (True, False, True, True)]
    [None, None, None, 'failure rate 75% >= 50% over 4 calls']

Time comes from the injected monotonic ``clock``; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

WindowKind = Literal["count", "time"]


class TripPolicy:
    """The rules of one breaker; ``reset()`` when the breaker opens or closes."""

    def __init__(
        self,
        *,
        consecutive: int = 5,
        failure_rate: float | None = None,
        slow_rate: float | None = None,
        slow_call_seconds: float = 0.5,
        window_kind: WindowKind = "count",
        window_size: float = 50,
        minimum_calls: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consecutive = consecutive
        self.failure_rate = failure_rate
        self.slow_rate = slow_rate
        self.slow_call_seconds = slow_call_seconds
        self.window_kind = window_kind
        self.window_size = window_size
        self.minimum_calls = minimum_calls
        self._clock = clock
        self._uses_window = failure_rate is not None or slow_rate is not None
        # (time, failed, slow) per call; a count window keeps at most window_size entries.
        self._calls: deque[tuple[float, bool, bool]] = deque(
            maxlen=int(window_size) if window_kind == "count" else None
        )
        self._failed = 0
        self._slow = 0
        self._streak = 0

    def is_slow(self, seconds: float) -> bool:
        return self.slow_rate is not None and seconds >= self.slow_call_seconds

    def record(self, failed: bool, seconds: float) -> str | None:
        """Count one finished call; return why the breaker must open, or ``None``."""
        self._streak = self._streak + 1 if failed else 0
        if self.consecutive and self._streak >= self.consecutive:
            return f"{self._streak} consecutive failures"
        if not self._uses_window:
            return None
        slow = self.is_slow(seconds)
        now = self._clock()
        calls = self._calls
        if calls.maxlen is not None and len(calls) == calls.maxlen:
            self._forget(calls[0])
        calls.append((now, failed, slow))
        self._failed += failed
        self._slow += slow
        if self.window_kind == "time":
            horizon = now - self.window_size
            while calls and calls[0][0] <= horizon:
                self._forget(calls.popleft())
        total = len(calls)
        if total < self.minimum_calls:
            return None
        if self.failure_rate is not None and self._failed >= self.failure_rate * total:
            return (
                f"failure rate {100 * self._failed / total:.0f}% >= "
                f"{100 * self.failure_rate:g}% over {total} calls"
            )
        if self.slow_rate is not None and self._slow >= self.slow_rate * total:
            return (
                f"slow-call rate {100 * self._slow / total:.0f}% >= {100 * self.slow_rate:g}% "
                f"(slower than {1000 * self.slow_call_seconds:g} ms) over {total} calls"
            )
        return None

    def reset(self) -> None:
        self._calls.clear()
        self._failed = self._slow = self._streak = 0

    def _forget(self, call: tuple[float, bool, bool]) -> None:
        self._failed -= call[1]
        self._slow -= call[2]
