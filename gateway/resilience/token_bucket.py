"""A token bucket on an injected monotonic clock: a rate limit that allows bursts.

The bucket holds up to ``size`` tokens and gains ``rate`` tokens per second; a request
takes one. A full bucket lets ``size`` requests through at once, after which requests pass
at ``rate`` per second. Over ``t`` seconds of steady overload a client therefore gets
``size + rate * t`` requests through, and every refused one learns how long until a token
is back::

    >>> now = [0.0]
    >>> bucket = TokenBucket(rate=2.0, size=2, clock=lambda: now[0])
    >>> bucket.take(), bucket.take(), bucket.take()
    (0.0, 0.0, 0.5)
    >>> now[0] = 0.5
    >>> bucket.take()
    0.0

Tokens are refilled lazily, when a request asks, so an idle bucket costs nothing. Nothing
awaits between reading and updating the level, so on one event loop no lock is needed.
"""

from __future__ import annotations

from collections.abc import Callable

# A token, give or take the rounding of clock differences (1000.05 - 1000 != 0.05).
_ONE_TOKEN = 1.0 - 1e-9


class TokenBucket:
    """``rate`` tokens per second, at most ``size`` held; starts full."""

    __slots__ = ("_clock", "_level", "_stamp", "rate", "size")

    def __init__(self, rate: float, size: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or size < 1:
            raise ValueError(f"a token bucket needs rate > 0 and size >= 1, not {rate}, {size}")
        self.rate = rate
        self.size = size
        self._clock = clock
        self._level = float(size)
        self._stamp = clock()

    def take(self) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be
        (nothing is taken then)."""
        now = self._clock()
        level = self._level + (now - self._stamp) * self.rate
        if level > self.size:
            level = self.size
        self._stamp = now
        if level >= _ONE_TOKEN:
            self._level = max(0.0, level - 1.0)
            return 0.0
        self._level = level
        return (1.0 - level) / self.rate

    @property
    def level(self) -> float:
        """Tokens held now (for status and tests)."""
        return min(self.size, self._level + (self._clock() - self._stamp) * self.rate)
