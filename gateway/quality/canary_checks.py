"""The built-in checks of a rollout's analysis, judged on one interval's cohort figures.

A check's value is the canary cohort's figure (``error_rate``, ``latency_p99_ms``,
``fallback_rate``, ``output_violation_rate``) or, with ``relative_to: primary``, the
canary's figure minus the primary's over the same interval. ``score_psi`` is the
population stability index of the canary's scores against the primary's: the primary's
scores are binned at their quantiles (deciles, as the drift monitors bin training values,
or fewer bins when the canary has fewer than :data:`SCORES_PER_BIN` scores per decile: an
empty bin of a small sample would read as a shift) and the canary's counted in the same
bins. With fewer than :data:`MIN_REFERENCE_SCORES` primary scores (a step at 100 %), the
canary is judged against the card's training scores.

A check without a figure (no canary answers, no scores, no primary to compare with)
fails: a rollout never advances on evidence it does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.contracts.card import Distribution
from gateway.quality.cohorts import IntervalFigures
from gateway.quality.psi import psi
from gateway.settings.analysis import CheckSettings

MIN_REFERENCE_SCORES = 50
SCORES_PER_BIN = 20


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict: ``{"name", "value", "bound", "ok"}`` and, when it failed
    without a value, ``error``."""

    name: str
    value: float | None
    bound: dict[str, object]
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 6),
            "bound": self.bound,
            "ok": self.ok,
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    def describe(self) -> str:
        """``score_psi 0.83 > max 0.2``, for a reason or an audit record."""
        if self.value is None:
            return f"{self.name}: {self.error}"
        if "min" in self.bound:
            return (
                f"{self.name} {self.value:.4g} {'>=' if self.ok else '<'} min {self.bound['min']}"
            )
        relation = "<=" if self.ok else ">"
        relative = " (canary - primary)" if "relative_to" in self.bound else ""
        return f"{self.name}{relative} {self.value:.4g} {relation} max {self.bound['max']}"


def judged(check: CheckSettings, value: float | None, error: str | None = None) -> CheckResult:
    """The verdict of ``check`` on ``value`` (None: failed, with ``error`` saying why)."""
    if value is None:
        return CheckResult(check.name, None, check.bound, False, error or "no value")
    ok = (check.max is None or value <= check.max) and (check.min is None or value >= check.min)
    return CheckResult(check.name, value, check.bound, ok)


def evaluate(
    check: CheckSettings,
    canary: IntervalFigures,
    primary: IntervalFigures,
    training: Distribution | None,
) -> CheckResult:
    """Judge one built-in ``check`` on the interval's figures."""
    if check.name == "score_psi":
        value, error = score_psi(canary.scores, primary.scores, training)
        return judged(check, value, error)
    mine = _figure(check.name, canary)
    if mine is None:
        return judged(check, None, "no canary answers in the interval")
    if check.relative_to is None:
        return judged(check, mine)
    theirs = _figure(check.name, primary)
    if theirs is None:
        return judged(check, None, "no primary figure to compare with")
    return judged(check, mine - theirs)


def _figure(name: str, figures: IntervalFigures) -> float | None:
    value: float | None = getattr(figures, name)
    return value


def score_psi(
    canary: np.ndarray, primary: np.ndarray, training: Distribution | None
) -> tuple[float | None, str | None]:
    """PSI of the canary's scores against the primary's (or the training scores')."""
    if not len(canary):
        return None, "no canary scores in the interval"
    bins = min(10, max(2, len(canary) // SCORES_PER_BIN))
    if len(primary) >= MIN_REFERENCE_SCORES:
        edges = np.unique(np.quantile(primary, np.linspace(0, 1, bins + 1)[1:-1]))
        expected = np.bincount(
            np.searchsorted(edges, primary, side="right"), minlength=len(edges) + 1
        ) / len(primary)
    elif training is not None:  # its deciles, merged into ``bins`` groups
        groups = min(bins, len(training.shares))
        cut = np.linspace(0, len(training.shares), groups + 1).round().astype(int)
        shares = np.cumsum([0.0, *training.shares])
        edges = np.asarray(training.edges)[cut[1:-1] - 1]
        expected = shares[cut[1:]] - shares[cut[:-1]]
    else:
        return None, "too few primary scores and no training scores in the card"
    counts = np.bincount(np.searchsorted(edges, canary, side="right"), minlength=len(edges) + 1)
    return psi(expected, counts), None
