"""A concurrency limit per upstream with a short, bounded queue; never an unbounded one.

    slot = await bulkhead.acquire(wait_seconds)   # BulkheadFull at once when the queue is full
    try:
        ...
    finally:
        bulkhead.release()

A caller that cannot get a slot within ``wait_seconds`` (the configured queue wait, capped
by its deadline) gets :class:`BulkheadFull` too, so a stalled upstream costs each extra
request at most that long and a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.errors import BulkheadFull


class Bulkhead:
    """Slots for at most ``max_concurrent`` calls; at most ``max_queue`` callers wait."""

    def __init__(self, name: str, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1 or max_queue < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queue >= 0")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.rejected = 0

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a free slot without waiting (no coroutine on the hot path); False when none."""
        if self.active < self.max_concurrent and not self._waiters:
            self.active += 1
            return True
        return False

    async def acquire(self, wait_seconds: float) -> None:
        """Take a slot, waiting at most ``wait_seconds`` in the queue; else BulkheadFull."""
        if self.active < self.max_concurrent and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.max_queue or wait_seconds <= 0:
            self.rejected += 1
            raise BulkheadFull(self.name, "full", self.max_concurrent, self.max_queue)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait_seconds):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():  # the slot came as time ran out
                return
            self.rejected += 1
            raise BulkheadFull(
                self.name, "queue wait", self.max_concurrent, self.max_queue
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot we will never use
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        """Give the slot to the oldest waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; active is unchanged
                return
        self.active -= 1
