"""A target's figures from what its clients and its process tree recorded, and the ratios.

Throughput is successful answers per second (wrk's rate counts error answers too), the
median of the 32-connection rounds; CPU is the process tree's over those rounds, per 1,000
successful answers; latency is pooled over the interleaved rounds
(:mod:`loadtest.bench_latency`); every measurement's client failures are kept by part
(``wrk_c32``, ``wrk_c64``, ``at_RATE``) and in ``total``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest import bench_failures, bench_latency, wrk
from loadtest.bench_modes import REFERENCE, GatewayMode, Metrics, provenance_check, record_problems
from loadtest.bench_tree import MB, TreeFigures
from loadtest.generator import Record


@dataclass(frozen=True, slots=True)
class Round:
    """One wrk run at 32 connections, and the CPU the measured process tree spent in it."""

    result: wrk.WrkResult
    cpu_seconds: float


def target_figures(
    mode: GatewayMode | None,
    rounds: Sequence[Round],
    c64: wrk.WrkResult,
    latency: dict[int, list[list[Record]]],
    tree: TreeFigures | None,
    counters: tuple[Metrics, Metrics] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The figures of one target and, for a gateway mode, what its answers' provenance
    contradicts (``counters``: the gateway's metrics before and after)."""
    c32 = [r.result for r in rounds]
    figures: dict[str, Any] = {}
    answered = sum(r.ok for r in c32) + c64.ok
    if tree is not None:
        used = sum(r.cpu_seconds for r in rounds)
        figures["cpu_seconds_per_1000"] = round(used / max(sum(r.ok for r in c32), 1) * 1000, 4)
    figures["rps_c32"] = round(statistics.median(r.ok_per_second for r in c32))
    figures["rps_c32_rounds"] = [round(r.ok_per_second) for r in c32]
    figures["rps_c64"] = round(c64.ok_per_second)
    failures = {"wrk_c32": bench_failures.from_wrk(c32), "wrk_c64": bench_failures.from_wrk([c64])}
    problems: list[str] = []
    for rate, per_round in latency.items():
        part = bench_latency.figures(per_round)
        figures[f"latency_ms_at_{rate}"] = part["latency_ms"]
        figures[f"latency_rounds_ms_at_{rate}"] = part["rounds_ms"]
        failures[f"at_{rate}"] = part["failures"]
        records = [r for records in per_round for r in records]
        answered += sum(1 for r in records if r.status == 200)
        if mode is not None:
            problems += [f"at {rate} req/s: {p}" for p in record_problems(mode, records)]
    failures["total"] = bench_failures.merged(failures.values())
    figures["client_failures"] = failures
    if tree is not None:
        figures["processes"] = tree.processes
        figures["rss_mb"] = round(tree.rss_bytes / MB, 1)
        figures["peak_rss_mb"] = round(tree.peak_rss_bytes / MB, 1)
    if mode is not None and counters is not None:
        checks, found = provenance_check(mode, counters[0], counters[1], answered)
        figures["checks"] = checks
        problems += found
    return figures, problems


def add_comparisons(figures: dict[str, dict[str, Any]], rates: Sequence[int]) -> None:
    """Throughput over the bare proxy's and, with ``direct`` measured in the same rounds,
    the latency added over it (negative values kept: the verdict calls them noise)."""
    bare_rps = figures[REFERENCE]["rps_c32"]
    direct = figures.get("direct")
    for name, fig in figures.items():
        fig["throughput_vs_bare_proxy"] = round(fig["rps_c32"] / bare_rps, 3) if bare_rps else 0.0
        if direct is None or name == "direct":
            continue
        for rate in rates:
            added = bench_latency.added(
                fig.get(f"latency_ms_at_{rate}", {}), direct.get(f"latency_ms_at_{rate}", {})
            )
            if added:
                fig[f"added_ms_at_{rate}"] = added
