"""Fault injection: make the model server misbehave on purpose for tests and chaos runs.

This is test instrumentation, not part of the Open Inference Protocol. A fault applies
to a valid inference request with probability ``rate`` (drawn from a generator seeded
with ``seed``, so a run is reproducible); invalid requests are answered as usual.

Modes: ``slow`` waits ``delay_ms`` before answering; ``error`` answers 500
``{"error": "injected fault"}``; ``nan`` and ``out-of-range`` replace every value of
every float output with NaN or 1.7; ``wrong-shape`` drops the last column of each 2-D
output; ``wrong-batch`` drops the last row of every output. The response's shapes
always describe the data actually sent, as a buggy upstream's would.

``skew`` is wrong silently: every probability ``p`` of a float output becomes
``sigmoid(logit(p) * SKEW_FACTOR)``, so answers stay valid probabilities (a row of class
probabilities still sums to 1, and each stays on its side of 0.5, so labels agree), no
error anywhere, but the score distribution moves: a fraud score of 0.005 reads 0.066.
Only a distribution check (a rollout's ``score_psi``, the score drift monitor) sees it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, get_args

import numpy as np

from gateway.modelserver.errors import InvalidFaultConfig

FaultMode = Literal[
    "normal", "slow", "error", "nan", "out-of-range", "wrong-shape", "wrong-batch", "skew"
]
FAULT_MODES: Final[tuple[FaultMode, ...]] = get_args(FaultMode)

#: What ``out-of-range`` writes: outside [0, 1], where probabilities must lie.
OUT_OF_RANGE_VALUE: Final = 1.7
#: What ``skew`` multiplies each probability's logit by (< 1: scores pulled towards 0.5).
SKEW_FACTOR: Final = 0.5


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """How the server misbehaves; the default is not at all.

    >>> FaultConfig(mode="error", rate=0.25, seed=7)
    FaultConfig(mode='error', delay_ms=0.0, rate=0.25, seed=7)
    """

    mode: FaultMode = "normal"
    delay_ms: float = 0.0
    rate: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.mode not in FAULT_MODES:
            problems.append(f"mode must be one of {', '.join(FAULT_MODES)}, not {self.mode!r}")
        if not _is_number(self.delay_ms) or not math.isfinite(self.delay_ms) or self.delay_ms < 0:
            problems.append(f"delay_ms must be a finite number >= 0, not {self.delay_ms!r}")
        if not _is_number(self.rate) or not 0.0 <= self.rate <= 1.0:
            problems.append(f"rate must be a number in [0, 1], not {self.rate!r}")
        if type(self.seed) is not int:
            problems.append(f"seed must be an integer, not {self.seed!r}")
        if problems:
            raise InvalidFaultConfig("; ".join(problems))

    @classmethod
    def from_mapping(cls, doc: object) -> FaultConfig:
        """Build from a JSON object; omitted keys take their defaults (a full replace)."""
        if not isinstance(doc, Mapping):
            raise InvalidFaultConfig("the fault config must be a JSON object")
        unknown = sorted(set(doc) - {"mode", "delay_ms", "rate", "seed"})
        if unknown:
            raise InvalidFaultConfig(f"unknown fault config key(s): {', '.join(unknown)}")
        return cls(**doc)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FaultInjector:
    """Decides per request whether the configured fault applies, and applies it."""

    def __init__(self, config: FaultConfig) -> None:
        self.configure(config)

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Switch to ``config``; its seed restarts the draw sequence."""
        self._config = config
        self._random = random.Random(config.seed)

    def draw(self) -> FaultMode:
        """The fault for the next request: the configured mode, or ``normal``."""
        config = self._config
        if config.mode == "normal":
            return "normal"
        return config.mode if self._random.random() < config.rate else "normal"


def corrupt(mode: FaultMode, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return ``array`` as the output-corrupting ``mode`` would send it."""
    if mode == "nan" and array.dtype.kind == "f":
        return np.full_like(array, np.nan)
    if mode == "out-of-range" and array.dtype.kind == "f":
        return np.full_like(array, OUT_OF_RANGE_VALUE)
    if mode == "wrong-shape" and array.ndim == 2:
        return array[:, :-1]
    if mode == "wrong-batch" and array.ndim >= 1:
        return array[:-1]
    if mode == "skew" and array.dtype.kind == "f":
        return skew(array)
    return array


def skew(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Probabilities with their logits scaled by :data:`SKEW_FACTOR` (see the module doc).

    >>> [round(float(v), 3) for v in skew(np.array([0.005, 0.5, 0.995]))]
    [0.066, 0.5, 0.934]
    """
    p = np.clip(array.astype(np.float64), 1e-12, 1 - 1e-12)
    # p^a / (p^a + (1-p)^a) is sigmoid(a * logit(p)); a 2-D row [1-p, p] stays summing to 1.
    a, b = p**SKEW_FACTOR, (1 - p) ** SKEW_FACTOR
    skewed: np.ndarray[Any, Any] = (a / (a + b)).astype(array.dtype)
    return skewed
