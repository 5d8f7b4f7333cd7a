"""Paired comparison figures against hand-computed values."""

from __future__ import annotations

import math

import pytest

from gateway.routing.comparison import PairedComparison, psi


def test_figures_for_a_known_difference() -> None:
    comparison = PairedComparison(threshold=0.5)
    comparison.add([0.1, 0.6, 0.9], [0.2, 0.4, 0.9])
    comparison.add([0.3], [0.3])
    assert comparison.pairs == 4
    assert comparison.agreement_rate == pytest.approx(3 / 4)  # 0.6 vs 0.4 disagrees
    assert comparison.mean_abs_diff == pytest.approx((0.1 + 0.2 + 0.0 + 0.0) / 4)
    assert comparison.max_abs_diff == pytest.approx(0.2)


def test_identical_scores_have_no_shift() -> None:
    comparison = PairedComparison()
    scores = [i / 100 for i in range(100)]
    comparison.add(scores, scores)
    assert comparison.psi() == pytest.approx(0.0)
    assert comparison.agreement_rate == 1.0 and comparison.max_abs_diff == 0.0


def test_psi_matches_the_formula() -> None:
    expected = [0.05] * 50 + [0.95] * 50  # half in bin 0, half in bin 9
    actual = [0.05] * 80 + [0.95] * 20
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-6)


def test_a_shifted_shadow_scores_a_large_psi() -> None:
    comparison = PairedComparison()
    served = [i / 200 for i in range(200)]
    comparison.add(served, [min(0.999, s + 0.3) for s in served])
    psi_value = comparison.psi()
    assert psi_value is not None and psi_value > 0.25


def test_the_psi_window_slides() -> None:
    comparison = PairedComparison(window=10)
    comparison.add([0.05] * 10, [0.95] * 10)
    assert (comparison.psi() or 0) > 1
    comparison.add([0.5] * 10, [0.5] * 10)
    assert comparison.psi() == pytest.approx(0.0)
    assert comparison.pairs == 20  # the running figures keep every pair


def test_mismatched_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="2 shadow scores for 1 served rows"):
        PairedComparison().add([0.1], [0.1, 0.2])


def test_empty_comparison_reports_nothing_yet() -> None:
    assert PairedComparison().as_dict() == {
        "pairs": 0, "label_agreement": None, "mean_abs_diff": None,
        "max_abs_diff": None, "psi": None, "psi_window": 0,
    }  # fmt: skip
