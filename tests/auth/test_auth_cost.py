"""The auth cost benchmark runs and reports its figures (their values are not judged here)."""

from __future__ import annotations

from loadtest import auth_cost


def test_the_benchmark_reports_both_figures() -> None:
    report = auth_cost.measure(requests=40, chunk=20, rounds=1, timed_calls=100)
    assert report["pairs"] == 2
    assert set(report["pipeline_us_per_request"]) == {"auth_off", "auth_on"}
    for name in ("admit_valid_key_us", "refuse_no_key_us", "check_without_auth_us"):
        assert report[name] > 0
