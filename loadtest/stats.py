"""Figures over load-test records: percentiles (nearest rank) and ROC AUC (rank based)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]: the smallest value with q% at or below it.

    >>> percentile([1, 2, 3, 4], 50)
    2
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(
    values: Sequence[float], points: Sequence[float] = (50, 90, 99, 99.9)
) -> dict[str, float]:
    """``{"p50": ..., "p90": ...}`` for ``values``; empty when there are none."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)
    return {f"p{p:g}": ordered[max(1, math.ceil(p / 100 * n)) - 1] for p in points}


def auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC by the Mann-Whitney rank statistic (ties get average ranks).

    ``None`` when only one class is present, where AUC is undefined.
    """
    if len(labels) != len(scores):
        raise ValueError("labels and scores differ in length")
    positives = sum(1 for label in labels if label == 1)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = average
        i = j + 1
    positive_ranks = sum(r for r, label in zip(ranks, labels, strict=True) if label == 1)
    return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)
