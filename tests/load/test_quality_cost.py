"""The monitors' cost benchmark measures both arms and can miss its target."""

from __future__ import annotations

from loadtest import quality_cost


def test_a_short_run_measures_both_arms_and_judges_the_target() -> None:
    report = quality_cost.measure(requests=300, chunk=50, rounds=1, max_us=0.0)
    assert report["pairs"] == 6
    assert set(report["pipeline_us_per_request"]) == {"monitors_off", "monitors_on"}
    assert report["monitor_calls_us_per_request"] > 0
    assert report["ok"] is False  # no monitor is free: a zero target is always missed
    assert all(count >= 300 for count in report["window_counts"].values())
    text = "\n".join(quality_cost.markdown(report))
    assert "## Data-quality monitors" in text and "missed" in text
