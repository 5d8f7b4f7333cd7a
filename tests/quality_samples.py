"""Values with the training distribution of a card's input or score: healthy traffic."""

from __future__ import annotations

import math
import random

from gateway.contracts.card import Distribution


def typical_values(
    distribution: Distribution, n: int, *, seed: int = 0, integer: bool = False
) -> list[float]:
    """About ``n`` values whose shares per bin are the training shares, shuffled.

    Bin ``i >= 1`` is ``[edges[i-1], edges[i])``, so ``edges[i-1]`` (rounded up for an
    ``integer`` input) stands for it; bin 0 (below the first edge) is stood for by a value
    under it (0 or more when it can be).
    """
    edges = distribution.edges
    first = edges[0]
    below = math.floor(first / 2) if first >= 1 else first / 2 if first > 0 else first - 1
    points = [below, *(math.ceil(e) if integer else e for e in edges)]
    assert all(p < e for p, e in zip(points[1:], edges[1:], strict=False)), (
        "a bin without an integer"
    )
    values = [
        float(point)
        for point, share in zip(points, distribution.shares, strict=True)
        for _ in range(round(share * n))
    ]
    random.Random(seed).shuffle(values)
    return values
