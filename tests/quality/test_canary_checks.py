"""Built-in rollout checks on one interval's cohort figures."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.contracts.card import Distribution
from gateway.quality.canary_checks import evaluate, score_psi
from gateway.quality.cohorts import SAMPLE_SIZE, CanaryCohorts, Cohort, IntervalFigures
from gateway.settings.analysis import CheckSettings


def figures(
    requests: int,
    errors: int = 0,
    violations: int = 0,
    lower: int = 0,
    latency: float = 0.01,
    scores: np.ndarray | None = None,
) -> IntervalFigures:
    cohort = Cohort()
    cohort.requests, cohort.errors = requests, errors
    cohort.violations, cohort.lower_rung = violations, lower
    answers = scores if scores is not None else np.full(requests, 0.1)
    for score in answers:
        cohort.answered(latency, [float(score)])
    return cohort.figures()


def check(name: str, max: float, relative: bool = False) -> CheckSettings:
    return CheckSettings(name=name, max=max, relative_to="primary" if relative else None)


def test_rates_and_latency_against_their_bounds() -> None:
    canary = figures(200, errors=4, violations=2, lower=10, latency=0.03)
    primary = figures(800, errors=2, latency=0.01)
    assert evaluate(check("error_rate", 0.01), canary, primary, None).value == pytest.approx(0.02)
    assert not evaluate(check("error_rate", 0.01), canary, primary, None).ok
    assert evaluate(check("error_rate", 0.03), canary, primary, None).ok
    assert evaluate(check("output_violation_rate", 0.01), canary, primary, None).value == 0.01
    assert evaluate(check("fallback_rate", 0.04), canary, primary, None).ok is False
    latency = evaluate(check("latency_p99_ms", 25), canary, primary, None)
    assert latency.value == pytest.approx(30) and not latency.ok


def test_relative_to_primary_bounds_the_difference() -> None:
    canary, primary = figures(200, latency=0.03), figures(800, latency=0.01)
    result = evaluate(check("latency_p99_ms", 25, relative=True), canary, primary, None)
    assert result.value == pytest.approx(20) and result.ok
    assert "(canary - primary)" in result.describe()
    assert not evaluate(check("latency_p99_ms", 15, relative=True), canary, primary, None).ok
    no_primary = evaluate(check("error_rate", 1, relative=True), canary, figures(0), None)
    assert not no_primary.ok and no_primary.error == "no primary figure to compare with"


def test_score_psi_of_the_same_distribution_is_small_and_of_a_skewed_one_large() -> None:
    rng = np.random.default_rng(3)
    primary = figures(2000, scores=rng.beta(1, 30, 2000))
    same = figures(500, scores=rng.beta(1, 30, 500))
    skewed = figures(500, scores=rng.beta(1, 30, 500) ** 0.3)
    assert evaluate(check("score_psi", 0.2), same, primary, None).ok
    result = evaluate(check("score_psi", 0.2), skewed, primary, None)
    assert not result.ok and result.value is not None and result.value > 1


def test_score_psi_falls_back_to_the_training_scores_and_fails_without_any() -> None:
    training = Distribution(edges=(0.25, 0.5, 0.75), shares=(0.25, 0.25, 0.25, 0.25))
    uniform = np.linspace(0, 1, 400, endpoint=False)
    value, error = score_psi(uniform, np.array([]), training)
    assert error is None and value == pytest.approx(0.0, abs=1e-9)
    value, error = score_psi(uniform, np.array([]), None)
    assert value is None and error is not None and "too few primary scores" in error
    assert score_psi(np.array([]), uniform, None)[1] == "no canary scores in the interval"


def test_no_canary_answers_fails_the_check() -> None:
    result = evaluate(check("error_rate", 0.5), figures(0), figures(100), None)
    assert not result.ok and result.value is None


def test_the_samples_are_bounded_and_take_starts_a_new_interval() -> None:
    cohorts = CanaryCohorts()
    for i in range(SAMPLE_SIZE + 10):
        cohorts.canary.answered(i / 1000, [0.5])
    assert len(cohorts.canary.latencies) == SAMPLE_SIZE == len(cohorts.canary.scores)
    # The ten oldest were dropped: the newest SAMPLE_SIZE are kept, in order.
    assert cohorts.canary.latencies[0] == 10 / 1000
    assert cohorts.canary.latencies[-1] == (SAMPLE_SIZE + 9) / 1000
    cohorts.primary.requests = 3
    canary, primary = cohorts.take()
    assert (len(canary.latencies), primary.requests) == (SAMPLE_SIZE, 3)
    assert cohorts.canary.requests == 0 and not cohorts.canary.latencies
    _, again = cohorts.take()  # the primary served nothing: its last figures are the reference
    assert again.requests == 3
