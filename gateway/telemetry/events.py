"""A bounded in-memory log of what changed in the running gateway, for operators.

Breaker transitions (upstreams and the feature store), config reloads (applied or
refused) and canary weight changes are recorded as they happen; ``/admin/status`` shows
them as ``events`` (oldest first, newest last) and the operator page (``/admin/ui``) draws
them as a timeline. Only the last ``capacity`` events are kept, so the log costs a fixed
amount of memory however long the gateway runs. Each worker process keeps its own log.

    events = EventLog(capacity=3, clock=lambda: 1700000000.0)
    events.record("breaker", "fraud", "fraud-v1: closed -> open (3 consecutive failures)")
    events.as_list()
    # [{"at": 1700000000.0, "kind": "breaker", "model": "fraud", "detail": "fraud-v1: ..."}]

Events are rare (a transition, a reload), never one per request, so recording one is not
on the hot path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EventKind = Literal["breaker", "reload", "canary"]
DEFAULT_CAPACITY = 200


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # seconds since the epoch (wall clock)
    kind: EventKind
    model: str | None  # None: the gateway as a whole (a reload, the feature store)
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"at": self.at, "kind": self.kind, "model": self.model, "detail": self.detail}


class EventLog:
    """The last ``capacity`` events, oldest first; used from one event loop."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, clock: Callable[[], float] = time.time
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._events: deque[Event] = deque(maxlen=capacity)
        self._clock = clock

    def record(self, kind: EventKind, model: str | None, detail: str) -> Event:
        event = Event(round(self._clock(), 3), kind, model, detail)
        self._events.append(event)
        return event

    def as_list(self) -> list[dict[str, object]]:
        """Every kept event as ``{at, kind, model, detail}``, newest last (a copy)."""
        return [event.as_dict() for event in self._events]

    def __len__(self) -> int:
        return len(self._events)
