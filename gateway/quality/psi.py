"""The population stability index of a window of values against a training baseline.

``PSI = sum((a_i - e_i) * ln(a_i / e_i))`` over the bins, where ``e_i`` is the training
share of bin ``i`` and ``a_i`` the window's. An empty bin on either side would make the
logarithm infinite, so both shares are floored at :data:`EPSILON` (the customary fix; it
caps one bin's contribution near ``a * ln(a / 1e-4)``).

    >>> round(psi(np.array([0.5, 0.5]), np.array([50, 50])), 6)
    0.0
    >>> round(psi(np.array([0.5, 0.5]), np.array([90, 10])), 3)
    0.879
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-4


def psi(expected: np.ndarray, counts: np.ndarray) -> float:
    """PSI of the window's per-bin ``counts`` against the training ``expected`` shares."""
    total = int(counts.sum())
    if total == 0:
        raise ValueError("PSI of an empty window")
    actual = np.maximum(counts / total, EPSILON)
    baseline = np.maximum(expected, EPSILON)
    return float(np.sum((actual - baseline) * np.log(actual / baseline)))
