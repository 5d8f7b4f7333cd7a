"""A target's figures: successful answers only, failures by measurement, the tree's CPU."""

from __future__ import annotations

from loadtest.bench_figures import Round, target_figures
from loadtest.bench_modes import GATEWAY_MODES, parse_metrics
from loadtest.bench_tree import MB, TreeFigures
from loadtest.generator import Record
from loadtest.wrk import WrkResult


def _rounds() -> list[Round]:
    return [
        Round(WrkResult(3000.0, 6000, 3600, seconds=2.0), 3.0),  # 1200 ok/s: wrk says 3000
        Round(WrkResult(1000.0, 2000, 0, timeout=5, seconds=2.0), 2.0),  # 1000 ok/s
        Round(WrkResult(1400.0, 2800, 0, seconds=2.0), 1.0),  # 1400 ok/s
    ]


def test_figures_count_successful_answers_and_keep_failures_by_measurement() -> None:
    latency = {500: [[Record(0.0, 0.001, 200, 0)] * 99 + [Record(0.0, 5.0, 0, 0)]]}
    c64 = WrkResult(900.0, 1800, 0, seconds=2.0)
    figures, problems = target_figures(None, _rounds(), c64, latency, TreeFigures(2, 0, MB, 2 * MB))
    assert problems == []
    assert figures["rps_c32"] == 1200 and figures["rps_c32_rounds"] == [1200, 1000, 1400]
    assert figures["cpu_seconds_per_1000"] == round(6.0 / 7200 * 1000, 4)
    failures = figures["client_failures"]
    assert set(failures) == {"wrk_c32", "wrk_c64", "at_500", "total"}
    assert failures["wrk_c32"]["failed"] == 3605
    assert failures["at_500"]["failed"] == 1
    assert failures["total"] == {"requests": 12705, "failed": 3606,
                                 "kinds": {"connection_error_or_timeout": 1, "non_2xx": 3600,
                                           "timeout": 5}}  # fmt: skip
    assert (figures["processes"], figures["rss_mb"], figures["peak_rss_mb"]) == (2, 1.0, 2.0)


def test_a_gateway_modes_answers_must_come_from_its_rung() -> None:
    mode = GATEWAY_MODES["gateway-fallback"]
    text = 'gateway_served_by_total{{model="fraud",rung="fallback"}} {n}\n'
    before, after = parse_metrics(text.format(n=0)), parse_metrics(text.format(n=10_000))
    wrong = {500: [[Record(0.0, 0.001, 200, 0, "primary", "fraud-v1")]]}
    c64 = WrkResult(0.0, 0, 0, seconds=1.0)
    figures, problems = target_figures(mode, _rounds(), c64, wrong, None, (before, after))
    assert "answers_by_rung" in figures["checks"] and "cpu_seconds_per_1000" not in figures
    assert problems == ["at 500 req/s: served_by other than 'fallback:onnx' in answers: "
                        "['fraud-v1']"]  # fmt: skip
