"""Noticing a healed store before the breaker's open interval ends.

While the store's breaker is open no lookup reaches the store, so it cannot see the store
come back before its interval (up to ``max_reset_timeout_seconds``) ends; a store back
after a worker restart or a stall would then stay unused for seconds. Lookups refused by
the open breaker poke this probe; at most every ``interval`` seconds it asks the store's
health endpoint (one call at a time, off the request path), and a healthy answer moves
the breaker to half-open: the next lookup is its trial. Without traffic nothing is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from gateway.resilience.breaker import CircuitBreaker


class RecoveryProbe:
    """Health checks of one dependency while its breaker is open; one per breaker."""

    def __init__(
        self,
        check: Callable[[], Awaitable[bool]],
        breaker: CircuitBreaker,
        interval: float,
        clock: Callable[[], float],
        results: Counter | None = None,  # labelled by result: healthy, unhealthy
    ) -> None:
        self._check = check
        self._breaker = breaker
        self._interval = interval
        self._clock = clock
        self._results = results
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """A lookup was refused by the open breaker: check the store if it is time."""
        now = self._clock()
        if self._task is not None or (self._last is not None and now - self._last < self._interval):
            return
        self._last = now
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        try:
            healthy = await self._check()
        finally:
            self._task = None
        if self._results is not None:
            self._results.labels("healthy" if healthy else "unhealthy").inc()
        if healthy and self._breaker.state == "open":
            self._breaker.half_open_now()

    async def close(self) -> None:
        """Cancel a check in flight (at shutdown)."""
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
