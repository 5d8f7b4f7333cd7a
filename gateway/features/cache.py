"""The last-known-good cache: the latest fresh value of each (entity, feature), bounded.

A cachetools ``TTLCache`` used as a plain mapping (``cachetools.cached`` on an ``async def``
would cache the coroutine object). Its timer is the injected wall clock and its TTL the
largest max-age budget, so entries nobody could use any more are evicted on their own;
whether a hit is still usable is decided per feature by the caller's budget, from the
value's event time, not from when it was cached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

CacheKey = tuple[str, str]  # (entity id, feature ref)
NEVER_READ = 0.0


@dataclass(frozen=True, slots=True)
class CachedValue:
    value: Any
    event_time: float  # seconds since the epoch, from the store's event timestamp
    # Wall-clock time of the store answer that last confirmed it; NEVER_READ for values
    # that did not come from this process's store calls (a warm start's snapshot).
    read_at: float = 0.0  # NEVER_READ


class LastKnownGood:
    """Bounded in entries; one instance per app, used from one event loop."""

    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._entries: TTLCache[CacheKey, CachedValue] = TTLCache(
            maxsize=max_entries, ttl=ttl_seconds, timer=clock
        )

    def put(
        self, entity: str, ref: str, value: Any, event_time: float, read_at: float = NEVER_READ
    ) -> None:
        """Remember ``value``; ``read_at`` is when the store answered with it (if it did)."""
        previous = self._entries.get((entity, ref))
        # A store replica lagging behind must not replace a newer value with an older one;
        # the store did answer, though, so the newer value counts as confirmed at read_at.
        if previous is None or previous.event_time <= event_time:
            self._entries[(entity, ref)] = CachedValue(value, event_time, read_at)
        elif read_at > previous.read_at:
            self._entries[(entity, ref)] = CachedValue(previous.value, previous.event_time, read_at)

    def get(self, entity: str, ref: str) -> CachedValue | None:
        return self._entries.get((entity, ref))

    def entries(self) -> list[tuple[str, str, Any, float]]:
        """Every value not evicted yet, as ``(entity, ref, value, event_time)`` (a copy)."""
        self._entries.expire()
        return [(e, r, c.value, c.event_time) for (e, r), c in self._entries.items()]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ttl_seconds(self) -> float:
        return float(self._entries.ttl)

    @property
    def max_entries(self) -> int:
        return int(self._entries.maxsize)
