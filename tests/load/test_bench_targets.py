"""The Targets table: each of the issue's targets against what was measured."""

from __future__ import annotations

from typing import Any

from loadtest.bench_render import markdown as bench_markdown
from loadtest.bench_targets import Verdict, evaluate, markdown, soak_verdict
from loadtest.soak import rss_growth


def _soak(growth: float, errors: int = 0, warmup_errors: int = 0) -> dict[str, Any]:
    return {"upstream": "static-nginx", "rate": 1000, "seconds": 300, "errors": errors,
            "warmup_errors": warmup_errors, "rss": {"growth_percent": growth}}  # fmt: skip


REPORT: dict[str, Any] = {
    "upstreams": {
        "static-nginx": {
            "gateway-v2-sampled-100": {"throughput_vs_bare_proxy": 0.75,
                                       "added_ms_at_500": {"p50": 0.5, "p99": 2.5}},
            "gateway-v2-sampled-10": {"throughput_vs_bare_proxy": 0.36,
                                      "added_ms_at_500": {"p50": 0.4, "p99": 1.9}},
            "gateway-fallback": {"throughput_vs_bare_proxy": 1.02},
        },
        "model-server": {"gateway-v1-cache": {"throughput_vs_bare_proxy": 0.49}},
    },
    "soak": _soak(4.99),
}  # fmt: skip
UPSTREAMS = ("static-nginx", "model-server")


def _row(target: str) -> dict[str, Verdict]:
    (row,) = [r for r in evaluate(REPORT, UPSTREAMS) if r.target.startswith(target)]
    return row.by_upstream


def test_throughput_goals_are_inclusive_and_per_upstream() -> None:
    assert _row("gateway-v2-sampled-100 throughput")["static-nginx"] == Verdict("0.75x", "met")
    assert _row("gateway-v2-sampled-10 throughput")["static-nginx"].status == "missed"
    assert _row("gateway-fallback throughput")["static-nginx"].status == "met"
    assert _row("gateway-fallback throughput")["model-server"].status == "not measured"
    assert _row("gateway-v1-cache throughput")["model-server"] == Verdict("0.49x", "missed")


def test_added_latency_goals_at_500() -> None:
    assert _row("gateway-v2-sampled-100 added p50")["static-nginx"].status == "met"
    assert _row("gateway-v2-sampled-100 added p99")["static-nginx"] == Verdict("2.5 ms", "missed")
    assert _row("gateway-v2-sampled-10 added p99")["static-nginx"].status == "met"
    assert _row("gateway-v2-sampled-10 added p50")["model-server"].status == "not measured"


def test_soak_needs_growth_under_five_percent_and_no_error() -> None:
    assert soak_verdict(_soak(4.99)) == Verdict("4.99%, 0 errors", "met")
    assert soak_verdict(_soak(5.0)).status == "missed"
    assert soak_verdict(_soak(0.1, warmup_errors=1)).status == "missed"
    assert soak_verdict(_soak(-2.0, errors=3)) == Verdict("-2%, 3 errors", "missed")
    assert soak_verdict(None).status == "not measured"
    row = _row("soak")
    assert row["static-nginx"].status == "met" and row["model-server"].status == "not measured"


def test_table_has_one_column_per_upstream() -> None:
    lines = markdown(evaluate(REPORT, UPSTREAMS), UPSTREAMS)
    assert lines[2] == "| target | goal | static-nginx | model-server |"
    assert (
        "| gateway-fallback throughput / bare proxy | >= 1x | 1.02x met | not measured |" in lines
    )
    # 8 goals, then one client-failure row per gateway mode measured (4 here).
    assert len([line for line in lines if line.startswith("| gateway")]) == 12


def test_a_soak_alone_reports_only_the_soak_target() -> None:
    soak = {**_soak(0.5), "rss": rss_growth([100 * 2**20, 100 * 2**20]), "warmup_seconds": 10.0, "requests": 300000, "achieved_rate": 999.0,
            "latency_ms": {"p50": 1.0, "p99": 5.0}}  # fmt: skip
    report = {"when": "now", "machine": "m", "upstreams": {}, "soak": soak}
    text = bench_markdown({**report, "kind": "soak"})
    assert text.startswith("# Soak now")
    assert "| soak RSS growth" in text
    assert "throughput / bare proxy" not in text
    full = bench_markdown({**report, "kind": "bench"})  # the full bench: all rows
    assert "throughput / bare proxy" in full and full.startswith("# Benchmark now")
