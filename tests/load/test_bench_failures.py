"""Failures are counted at the client, and a figure whose measurement failed too much is missed."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.bench_failures import describe, exceeds, from_records, from_wrk, merged
from loadtest.bench_targets import Verdict, evaluate
from loadtest.generator import Record
from loadtest.wrk import WrkResult

UPSTREAMS = ("static-nginx",)


def test_wrk_failures_are_error_answers_and_every_kind_of_socket_error() -> None:
    runs = [
        WrkResult(1000.0, 2000, 5, connect=1, read=2, write=0, timeout=3, seconds=2.0),
        WrkResult(1000.0, 2000, 0, seconds=2.0),
    ]
    counts = from_wrk(runs)
    assert counts == {
        "requests": 4006,  # answers read plus socket errors
        "failed": 11,
        "kinds": {"connect": 1, "non_2xx": 5, "read": 2, "timeout": 3},
    }


def test_open_loop_failures_are_every_status_but_200() -> None:
    records = [
        Record(0.0, 0.001, 200, 0),
        Record(0.0, 5.0, 0, 0),
        Record(0.0, 0.0, -1, 0),
        Record(0.0, 0.002, 503, 0),
        Record(0.0, 0.002, 503, 0),
    ]
    counts = from_records(records)
    assert counts["requests"] == 5 and counts["failed"] == 4
    assert counts["kinds"] == {
        "connection_error_or_timeout": 1,
        "not_sent": 1,
        "status_503": 2,
    }
    assert merged([counts, from_records(records[:1])])["requests"] == 6
    assert describe(counts).startswith("4 of 5 failed (80.00%: ")


def test_the_bound_is_a_share_of_the_requests() -> None:
    assert not exceeds({"requests": 1000, "failed": 1, "kinds": {}}, 0.1)
    assert exceeds({"requests": 1000, "failed": 2, "kinds": {}}, 0.1)
    assert exceeds({"requests": 1000, "failed": 1, "kinds": {}}, 0.0)
    # A measurement that made no request measured nothing.
    assert exceeds({"requests": 0, "failed": 0, "kinds": {}}, 0.1)
    assert not exceeds(None, 0.1)


def _counts(failed: int, requests: int = 10_000) -> dict[str, Any]:
    return {"requests": requests, "failed": failed, "kinds": {"non_2xx": failed} if failed else {}}


def _mode(ratio: float, added: dict[str, float], c32: int = 0, at_500: int = 0) -> dict[str, Any]:
    return {
        "throughput_vs_bare_proxy": ratio,
        "added_ms_at_500": added,
        "client_failures": {
            "wrk_c32": _counts(c32),
            "at_500": _counts(at_500),
            "at_2000": _counts(0),
            "total": _counts(c32 + at_500, 30_000),
        },
    }


def _report(**modes: dict[str, Any]) -> dict[str, Any]:
    base = {"bare-aiohttp-proxy": _mode(1.0, {}), "direct": _mode(5.0, {})}
    return {"upstreams": {"static-nginx": {**base, **modes}}}


def _verdict(report: dict[str, Any], target: str) -> Verdict:
    (row,) = [r for r in evaluate(report, UPSTREAMS) if r.target == target]
    return row.by_upstream["static-nginx"]


def test_throughput_above_its_goal_is_missed_when_its_wrk_runs_failed() -> None:
    target = "gateway-fallback throughput / bare proxy"
    assert _verdict(_report(**{"gateway-fallback": _mode(1.2, {})}), target).status == "met"
    failing = _report(**{"gateway-fallback": _mode(1.2, {}, c32=11)})
    verdict = _verdict(failing, target)
    assert verdict.status == "missed" and "11 of 10000 failed" in verdict.measured
    # The reference failing makes the ratio meaningless too.
    bare_failing = _report(**{"gateway-fallback": _mode(1.2, {})})
    bare_failing["upstreams"]["static-nginx"]["bare-aiohttp-proxy"] = _mode(1.0, {}, c32=50)
    assert _verdict(bare_failing, target).status == "missed"


def test_added_latency_is_missed_when_the_rate_failed_for_the_mode_or_direct() -> None:
    target = "gateway-v2-sampled-10 added p50 @500 req/s"
    good = {"p50": 0.3, "p99": 1.0}
    assert _verdict(_report(**{"gateway-v2-sampled-10": _mode(1, good)}), target).status == "met"
    failing = _report(**{"gateway-v2-sampled-10": _mode(1, good, at_500=200)})
    assert _verdict(failing, target).status == "missed"
    direct_failing = _report(**{"gateway-v2-sampled-10": _mode(1, good)})
    direct_failing["upstreams"]["static-nginx"]["direct"] = _mode(5.0, {}, at_500=30)
    assert _verdict(direct_failing, target).status == "missed"


def test_every_gateway_mode_has_a_client_failure_verdict() -> None:
    # The review's case: the gateway's "none" rung said 0 failed, the clients saw 7,912.
    report = _report(
        **{
            "gateway-v2-sampled-100": _mode(0.8, {}, at_500=7912),
            "gateway-fallback": _mode(1.0, {}),
        }
    )
    failing = _verdict(report, "gateway-v2-sampled-100 client failures")
    assert failing.status == "missed" and failing.measured.startswith("7912 of 30000 failed")
    assert _verdict(report, "gateway-fallback client failures") == Verdict(
        "0 of 30000 failed", "met"
    )
    rows = [r.target for r in evaluate(report, UPSTREAMS)]
    assert "direct client failures" not in rows  # baselines have no goals, only figures


@pytest.mark.parametrize(("bound", "status"), [(0.1, "missed"), (1.0, "met")])
def test_the_bound_comes_from_the_reports_settings(bound: float, status: str) -> None:
    report = _report(**{"gateway-fallback": _mode(1.2, {}, c32=50)})
    report["settings"] = {"max_failed_percent": bound}
    assert _verdict(report, "gateway-fallback throughput / bare proxy").status == status
    assert _verdict(report, "gateway-fallback client failures").status == status
