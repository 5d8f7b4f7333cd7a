"""Feature age from Feast's event timestamps, and the max-age budget that makes a value stale.

Feast's Python feature server does not apply a feature view's TTL (an expired value still
says ``PRESENT``), so the gateway judges freshness itself: a value's age is
``now - event_timestamp`` on the injected wall clock, and it is stale once the age exceeds
the feature's budget. Example: event ``2026-11-25T22:23:56Z``, now ``22:25:56Z``, budget
60 s -> age 120 s -> stale.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

# Feast writes the epoch for "no timestamp" (missing values, the entity key column).
NO_TIMESTAMP = 0.0


@lru_cache(maxsize=4096)
def parse_event_timestamp(text: str) -> float:
    """Seconds since the epoch for an ISO-8601 timestamp such as ``2026-11-25T22:23:56Z``.

    Cached: a batch repeats a handful of distinct timestamps, and parsing is the costly part.
    Raises ``ValueError`` for text that is not a timestamp.
    """
    return datetime.fromisoformat(text).timestamp()


def age_seconds(event_time: float, now: float) -> float:
    """The age of a value stamped ``event_time`` at wall-clock ``now`` (never negative)."""
    return max(0.0, now - event_time)


def is_fresh(event_time: float, now: float, max_age: float) -> bool:
    """True when a value stamped ``event_time`` is within its ``max_age`` budget at ``now``."""
    return event_time > NO_TIMESTAMP and now - event_time <= max_age
