"""The issue's targets, each compared with what the bench measured.

Throughput is the mode's rate of successful answers under wrk at 32 connections over the
bare aiohttp proxy's in the same run and upstream; added latency is the gateway's
open-loop percentile minus the direct upstream's, both from the same interleaved rounds;
the soak passes with RSS growth under the bound and no error. Figures are compared as
measured, never adjusted, and a figure counts only if the measurement it comes from kept
its client-counted failures within the bound (``settings.max_failed_percent``, default
:data:`~loadtest.bench_failures.MAX_FAILED_PERCENT`): otherwise it is missed, whatever its
value. Every gateway mode has a row for its client failures over its whole measurement.
A negative added latency is "within noise", never met; a mode the gateway cannot run yet
(a config key it refuses) is "unavailable".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from loadtest import bench_failures
from loadtest.bench_failures import MAX_FAILED_PERCENT, Counts

Status = Literal["met", "missed", "not measured", "within noise", "unavailable"]

THROUGHPUT_GOALS: Final = (
    ("gateway-v2-sampled-100", 0.75),
    ("gateway-v2-sampled-10", 0.85),
    ("gateway-fallback", 1.0),
    ("gateway-v1-cache", 0.5),
)
LATENCY_RATE: Final = 500
ADDED_LATENCY_GOALS: Final = (("p50", 0.5), ("p99", 2.0))  # ms, at LATENCY_RATE
LATENCY_MODES: Final = ("gateway-v2-sampled-100", "gateway-v2-sampled-10")
SOAK_MAX_GROWTH_PERCENT: Final = 5.0
REFERENCE: Final = "bare-aiohttp-proxy"
DIRECT: Final = "direct"
LIVE_MODE: Final = "gateway-v1-live"
COALESCE_GOAL: Final = 1.5  # throughput with coalescing over without


@dataclass(frozen=True, slots=True)
class Verdict:
    measured: str
    status: Status


@dataclass(frozen=True, slots=True)
class TargetRow:
    target: str
    goal: str
    by_upstream: dict[str, Verdict]


NOT_MEASURED: Final = Verdict("", "not measured")


def _at_least(value: float | None, goal: float, unit: str) -> Verdict:
    if value is None:
        return NOT_MEASURED
    return Verdict(f"{value:g}{unit}", "met" if value >= goal else "missed")


def _at_most(value: float | None, goal: float, unit: str) -> Verdict:
    if value is None:
        return NOT_MEASURED
    return Verdict(f"{value:g}{unit}", "met" if value <= goal else "missed")


def _failed(value: str, parts: Sequence[Counts | None], bound: float) -> Verdict | None:
    """A missed verdict giving ``value`` and the failures when a part exceeds the bound."""
    over = [p for p in parts if p is not None and bench_failures.exceeds(p, bound)]
    if not over:
        return None
    return Verdict("; ".join([value, *(bench_failures.describe(p) for p in over)]), "missed")


def _added(value: float | None, goal: float) -> Verdict:
    if value is not None and value < 0:
        return Verdict(f"{value:g} ms", "within noise")
    return _at_most(value, goal, " ms")


def soak_verdict(soak: dict[str, Any] | None) -> Verdict:
    """RSS growth (end over start) below the bound and zero errors, warm-up included."""
    if not soak:
        return NOT_MEASURED
    growth = soak["rss"]["growth_percent"]
    errors = soak["errors"] + soak["warmup_errors"]
    met = growth < SOAK_MAX_GROWTH_PERCENT and errors == 0
    return Verdict(f"{growth:g}%, {errors} errors", "met" if met else "missed")


def failures_verdict(counts: Counts | None, bound: float) -> Verdict:
    if counts is None:
        return NOT_MEASURED
    exceeded = bench_failures.exceeds(counts, bound)
    return Verdict(bench_failures.describe(counts), "missed" if exceeded else "met")


def live_verdict(live: dict[str, Any], bound: float) -> Verdict:
    """Coalescing on over off: both arms measured, every value live, failures in bound."""
    arms = live.get("arms", {})
    missing = [f"{arm}: {fig['unavailable']}" for arm, fig in arms.items() if "unavailable" in fig]
    if missing or set(arms) != {"on", "off"}:
        return Verdict("; ".join(missing), "unavailable")
    ratio = live.get("throughput_on_over_off")
    if ratio is None:  # the off arm answered nothing: no ratio
        return Verdict("no successful answer with coalescing off", "missed")
    failed = _failed(f"{ratio:g}x", [arms[a].get("client_failures") for a in ("on", "off")],
                     bound)  # fmt: skip
    if failed is not None:
        return failed
    problems = [p for a in ("on", "off") for p in arms[a].get("problems", [])]
    if problems:
        return Verdict(f"{ratio:g}x; " + "; ".join(problems), "missed")
    return _at_least(ratio, COALESCE_GOAL, "x")


def evaluate(report: dict[str, Any], upstreams: tuple[str, ...]) -> list[TargetRow]:
    """One row per target, one verdict per upstream in ``upstreams``."""
    measured: dict[str, dict[str, Any]] = report.get("upstreams", {})
    bound = float(report.get("settings", {}).get("max_failed_percent", MAX_FAILED_PERCENT))

    def figure(upstream: str, mode: str, key: str) -> Any:
        return measured.get(upstream, {}).get(mode, {}).get(key)

    def failures(upstream: str, mode: str, part: str) -> Counts | None:
        counts: Counts | None = (figure(upstream, mode, "client_failures") or {}).get(part)
        return counts

    rows = []
    for mode, goal in THROUGHPUT_GOALS:
        verdicts = {}
        for u in upstreams:
            ratio = figure(u, mode, "throughput_vs_bare_proxy")
            parts = [failures(u, mode, "wrk_c32"), failures(u, REFERENCE, "wrk_c32")]
            failed = _failed(f"{ratio:g}x", parts, bound) if ratio is not None else None
            verdicts[u] = failed or _at_least(ratio, goal, "x")
        rows.append(TargetRow(f"{mode} throughput / bare proxy", f">= {goal:g}x", verdicts))
    at = f"at_{LATENCY_RATE}"
    for mode in LATENCY_MODES:
        for point, goal in ADDED_LATENCY_GOALS:
            verdicts = {}
            for u in upstreams:
                value = (figure(u, mode, f"added_ms_{at}") or {}).get(point)
                parts = [failures(u, mode, at), failures(u, DIRECT, at)]
                failed = _failed(f"{value:g} ms", parts, bound) if value is not None else None
                verdicts[u] = failed or _added(value, goal)
            rows.append(TargetRow(f"{mode} added {point} @{LATENCY_RATE} req/s",
                                  f"<= {goal:g} ms", verdicts))  # fmt: skip
    live = report.get("live_lookups")
    if live:
        verdicts = {u: NOT_MEASURED for u in upstreams}
        if live["upstream"] in verdicts:
            verdicts[live["upstream"]] = live_verdict(live, bound)
        rows.append(TargetRow(f"{LIVE_MODE} throughput, coalescing on / off",
                              f">= {COALESCE_GOAL:g}x", verdicts))  # fmt: skip
    modes = [m for m in dict.fromkeys(m for u in upstreams for m in measured.get(u, {}))
             if m.startswith("gateway-")]  # fmt: skip
    for mode in modes:
        verdicts = {u: failures_verdict(failures(u, mode, "total"), bound) for u in upstreams}
        rows.append(TargetRow(f"{mode} client failures", f"<= {bound:g}% of requests", verdicts))
    if live:
        for arm, fig in live.get("arms", {}).items():
            verdicts = {u: NOT_MEASURED for u in upstreams}
            if live["upstream"] in verdicts:
                counts = fig.get("client_failures")
                verdicts[live["upstream"]] = (
                    Verdict(fig["unavailable"], "unavailable")
                    if "unavailable" in fig
                    else failures_verdict(counts, bound)
                )
            rows.append(TargetRow(f"{LIVE_MODE} coalescing {arm} client failures",
                                  f"<= {bound:g}% of requests", verdicts))  # fmt: skip
    soak = report.get("soak")
    name = "soak RSS growth, errors"
    if soak:
        name += f" ({soak['seconds']:g} s @{soak['rate']:g} req/s)"
    verdicts = {u: NOT_MEASURED for u in upstreams}
    if soak and soak["upstream"] in verdicts:
        verdicts[soak["upstream"]] = soak_verdict(soak)
    rows.append(TargetRow(name, f"< {SOAK_MAX_GROWTH_PERCENT:g}%, 0 errors", verdicts))
    return rows


def as_json(rows: list[TargetRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


def markdown(rows: list[TargetRow], upstreams: tuple[str, ...]) -> list[str]:
    """The report's Targets table: one column per upstream."""

    def cell(verdict: Verdict) -> str:
        return verdict.status if not verdict.measured else f"{verdict.measured} {verdict.status}"

    lines = [
        "## Targets",
        "",
        "| target | goal | " + " | ".join(upstreams) + " |",
        "|---|---|" + "---|" * len(upstreams),
    ]
    for row in rows:
        cells = " | ".join(cell(row.by_upstream.get(u, NOT_MEASURED)) for u in upstreams)
        lines.append(f"| {row.target} | {row.goal} | {cells} |")
    return [*lines, ""]
