"""The issue's targets, each compared with what the bench measured: met, missed or not measured.

Throughput is the mode's wrk rate at 32 connections over the bare aiohttp proxy's in the
same run and upstream; added latency is the gateway's open-loop percentile minus the direct
upstream's at the same rate; the soak passes with RSS growth under the bound and no error.
Figures are compared as measured, never adjusted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

Status = Literal["met", "missed", "not measured"]

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


def soak_verdict(soak: dict[str, Any] | None) -> Verdict:
    """RSS growth (end over start) below the bound and zero errors, warm-up included."""
    if not soak:
        return NOT_MEASURED
    growth = soak["rss"]["growth_percent"]
    errors = soak["errors"] + soak["warmup_errors"]
    met = growth < SOAK_MAX_GROWTH_PERCENT and errors == 0
    return Verdict(f"{growth:g}%, {errors} errors", "met" if met else "missed")


def evaluate(report: dict[str, Any], upstreams: tuple[str, ...]) -> list[TargetRow]:
    """One row per target, one verdict per upstream in ``upstreams``."""
    measured: dict[str, dict[str, Any]] = report.get("upstreams", {})

    def figure(upstream: str, mode: str, key: str) -> Any:
        return measured.get(upstream, {}).get(mode, {}).get(key)

    rows = []
    for mode, goal in THROUGHPUT_GOALS:
        verdicts = {
            u: _at_least(figure(u, mode, "throughput_vs_bare_proxy"), goal, "x") for u in upstreams
        }
        rows.append(TargetRow(f"{mode} throughput / bare proxy", f">= {goal:g}x", verdicts))
    for mode in LATENCY_MODES:
        for point, goal in ADDED_LATENCY_GOALS:
            verdicts = {
                u: _at_most((figure(u, mode, f"added_ms_at_{LATENCY_RATE}") or {}).get(point),
                            goal, " ms")
                for u in upstreams
            }  # fmt: skip
            rows.append(TargetRow(f"{mode} added {point} @{LATENCY_RATE} req/s",
                                  f"<= {goal:g} ms", verdicts))  # fmt: skip
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
