"""Paired comparison of a shadow's scores with the scores actually served.

For every shadowed request both models scored the same rows, so the pairs are compared
row by row: label agreement, mean and max absolute score difference, and the population
stability index (PSI) of the shadow's scores against the served ones over a sliding
window. PSI = sum over bins of (s - p) * ln(s / p); below 0.1 is usually read as no
shift, above 0.25 as a major one.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

PSI_BINS = 10
# Smoothing for empty bins, so PSI stays finite for a short window.
_EPSILON = 1e-4


def psi(expected: list[float], actual: list[float], bins: int = PSI_BINS) -> float:
    """PSI of ``actual`` against ``expected``, both scores in [0, 1], equal-width bins."""
    if not expected or not actual:
        return 0.0

    def shares(values: list[float]) -> list[float]:
        counts = [0] * bins
        for value in values:
            counts[min(bins - 1, max(0, int(value * bins)))] += 1
        total = len(values)
        return [max(c / total, _EPSILON) for c in counts]

    return sum(
        (a - e) * math.log(a / e) for e, a in zip(shares(expected), shares(actual), strict=True)
    )


@dataclass
class PairedComparison:
    """Running figures for one model and one shadow."""

    threshold: float = 0.5
    window: int = 2000
    pairs: int = 0
    agreements: int = 0
    abs_diff_sum: float = 0.0
    max_abs_diff: float = 0.0
    _served: deque[float] = field(default_factory=deque, repr=False)
    _shadow: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self._served = deque(maxlen=self.window)
        self._shadow = deque(maxlen=self.window)

    def add(self, served: list[float], shadow: list[float]) -> None:
        """Record one request's rows; lengths must match (else the shadow answer is bad)."""
        if len(served) != len(shadow):
            raise ValueError(f"{len(shadow)} shadow scores for {len(served)} served rows")
        for s, h in zip(served, shadow, strict=True):
            diff = abs(s - h)
            self.pairs += 1
            self.abs_diff_sum += diff
            self.max_abs_diff = max(self.max_abs_diff, diff)
            self.agreements += (s >= self.threshold) == (h >= self.threshold)
        self._served.extend(served)
        self._shadow.extend(shadow)

    @property
    def agreement_rate(self) -> float | None:
        return self.agreements / self.pairs if self.pairs else None

    @property
    def mean_abs_diff(self) -> float | None:
        return self.abs_diff_sum / self.pairs if self.pairs else None

    def psi(self) -> float | None:
        return psi(list(self._served), list(self._shadow)) if self._served else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "label_agreement": self.agreement_rate,
            "mean_abs_diff": self.mean_abs_diff,
            "max_abs_diff": self.max_abs_diff if self.pairs else None,
            "psi": self.psi(),
            "psi_window": len(self._served),
        }
