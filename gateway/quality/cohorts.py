"""Per-interval figures of a canary's cohort and the primary's, for the rollout analysis.

A request routed to a variant (its *cohort*, whatever rung answered it) is counted on the
hot path with a few integer additions and, once answered, one latency and its scores in
bounded deques; nothing else. The analysis (``gateway/rollout/analyst.py``) takes
the figures at the end of each interval (:meth:`CanaryCohorts.take`), which starts the
next interval from zero.

Counted per cohort:

- ``requests``: requests routed to the variant that reached the degradation ladder;
- ``errors``: those whose upstream call failed (a transport error, a timeout, an open
  breaker, an output-contract violation; a 4xx is the client's and is not counted);
- ``violations``: the subset of ``errors`` that were output-contract violations;
- ``lower_rung``: those answered by a lower rung (fallback model, default) or by none;
- ``latencies``: seconds from arrival to answer of the answered ones (the last
  :data:`SAMPLE_SIZE` of the interval);
- ``scores``: the scores the variant's own upstream answered (the last :data:`SAMPLE_SIZE`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLE_SIZE = 4096


class Cohort:
    """One variant's running figures for the current interval (mutated on the hot path)."""

    __slots__ = ("errors", "latencies", "lower_rung", "requests", "scores", "violations")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.violations = 0
        self.lower_rung = 0
        # The interval's most recent answers, bounded (as the score monitors keep theirs).
        self.latencies: deque[float] = deque(maxlen=SAMPLE_SIZE)
        self.scores: deque[float] = deque(maxlen=SAMPLE_SIZE)

    def answered(self, seconds: float, scores: Sequence[float]) -> None:
        """One answer of this cohort: its latency, and the scores its own upstream gave."""
        self.latencies.append(seconds)
        self.scores.extend(scores)

    def figures(self) -> IntervalFigures:
        return IntervalFigures(
            requests=self.requests,
            errors=self.errors,
            violations=self.violations,
            lower_rung=self.lower_rung,
            latencies=np.asarray(self.latencies, dtype=np.float64),
            scores=np.asarray(self.scores, dtype=np.float64),
        )


@dataclass(frozen=True, slots=True, eq=False)
class IntervalFigures:
    """One cohort's figures over one judged interval."""

    requests: int
    errors: int
    violations: int
    lower_rung: int
    latencies: np.ndarray
    scores: np.ndarray

    def _share(self, count: int) -> float | None:
        return count / self.requests if self.requests else None

    @property
    def error_rate(self) -> float | None:
        return self._share(self.errors)

    @property
    def fallback_rate(self) -> float | None:
        return self._share(self.lower_rung)

    @property
    def output_violation_rate(self) -> float | None:
        return self._share(self.violations)

    @property
    def latency_p99_ms(self) -> float | None:
        if not len(self.latencies):
            return None
        return float(np.percentile(self.latencies, 99)) * 1000.0


class CanaryCohorts:
    """The primary's and the canary's cohorts of one model, and what the analysis last saw.

    Kept across config reloads (a rollout step is a reload), replaced only when the model
    loses its ``canary.analysis``.
    """

    __slots__ = ("canary", "last_checks", "primary", "reference", "waiting")

    def __init__(self) -> None:
        self.primary = Cohort()
        self.canary = Cohort()
        # The last judged interval's check results (status shows them), and why the step
        # waits when it does.
        self.last_checks: list[dict[str, object]] | None = None
        self.waiting: str | None = None
        # The primary's figures of the last interval it served in: what relative checks
        # compare with when the canary takes all the traffic (a step at 100 %).
        self.reference: IntervalFigures | None = None

    def of(self, variant: str) -> Cohort:
        return self.canary if variant == "canary" else self.primary

    def take(self) -> tuple[IntervalFigures, IntervalFigures]:
        """The interval's ``(canary, primary)`` figures; the next interval starts empty.

        The primary's side is the reference when it served this interval, else the last
        interval it served in.
        """
        canary, primary = self.canary.figures(), self.primary.figures()
        self.canary, self.primary = Cohort(), Cohort()
        if primary.requests:
            self.reference = primary
        elif self.reference is not None:
            primary = self.reference
        return canary, primary

    def reset(self) -> None:
        """Forget the running interval (a new step, a pause): figures start from zero."""
        self.canary, self.primary = Cohort(), Cohort()
        self.waiting = None
