"""Sticky weighted canary assignment.

A key (e.g. a ``customer_id``) maps to a fixed point in ``[0, 100)`` by a keyed BLAKE2b
hash of the model name and the key; the key is on the canary when its point is below the
canary weight. So the same key always lands on the same variant for a given weight, and
raising the weight only moves keys from primary to canary, never back. Python's ``hash``
is salted per process and would reshuffle cohorts on every restart.

>>> split = CanarySplit("fraud", weight=10.0)
>>> split.choose("c-0042") == split.choose("c-0042")
True
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.provenance import RoutedVariant

_SPAN = float(2**64)


def position(model: str, key: str) -> float:
    """The key's fixed point in ``[0, 100)`` for ``model``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=model.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / _SPAN * 100.0


@dataclass(frozen=True, slots=True)
class CanarySplit:
    """The canary share of one model; ``random`` splits requests that carry no key."""

    model: str
    weight: float
    random: Callable[[], float] = field(default=random.random, compare=False)

    def choose(self, key: str | None) -> RoutedVariant:
        if self.weight <= 0.0:
            return "primary"
        if self.weight >= 100.0:
            return "canary"
        point = self.random() * 100.0 if key is None else position(self.model, key)
        return "canary" if point < self.weight else "primary"
