"""Open-loop latency of every target, in the same rounds, and the latency added over direct.

A gateway's percentile minus a direct run's taken at another time measures the machine's
weather as much as the gateway (the model server's p99 once made the gateway's added p99
-84.6 ms). So at each rate the targets, ``direct`` among them, take turns: ``rounds``
short open-loop runs of ``seconds`` each, the order reversed every other round so no
target always follows the same one. Each target keeps one client session across its turns
(its connections stay warm; a short warm-up run opens them). Percentiles are over the
answers of all rounds pooled; the added latency is the target's minus direct's from the
same rounds. A negative added latency is noise, never a goal met.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from loadtest import bench_failures, generator
from loadtest.generator import Record
from loadtest.payloads import Payload
from loadtest.stats import summary

ADDED_POINTS: Final = ("p50", "p99")
WARMUP_SECONDS: Final = 0.5


@dataclass(frozen=True, slots=True)
class LatencyTarget:
    name: str
    base: str  # http://host:port
    payloads: Sequence[Payload]  # cycled


def round_order(names: Sequence[str], index: int) -> list[str]:
    """The targets' turn order in round ``index``: as given, reversed every other round."""
    return list(names) if index % 2 == 0 else list(reversed(names))


async def interleaved(
    targets: Sequence[LatencyTarget], rate: float, rounds: int, seconds: float
) -> dict[str, list[list[Record]]]:
    """``rounds`` runs of ``seconds`` at ``rate`` req/s per target, the targets taking turns;
    per target, the records of each round."""
    by_name = {t.name: t for t in targets}
    out: dict[str, list[list[Record]]] = {t.name: [] for t in targets}
    sessions = {
        t.name: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=600)
        )
        for t in targets
    }
    try:
        for t in targets:  # open each target's connections; not measured
            await generator.run(t.base, t.payloads, rate, WARMUP_SECONDS, session=sessions[t.name])
        for index in range(rounds):
            for name in round_order(list(by_name), index):
                target = by_name[name]
                records = await generator.run(
                    target.base, target.payloads, rate, seconds, session=sessions[name]
                )
                out[name].append(records)
    finally:
        for session in sessions.values():
            await session.close()
    return out


def figures(rounds: Sequence[Sequence[Record]]) -> dict[str, Any]:
    """Pooled percentiles of the 200s (ms), each round's p50 and p99, and the failures."""
    every = [r for records in rounds for r in records]
    ok = [r.latency * 1000 for r in every if r.status == 200]
    per_round = []
    for records in rounds:
        round_ok = [r.latency * 1000 for r in records if r.status == 200]
        per_round.append({k: round(v, 3) for k, v in summary(round_ok, (50, 99)).items()})
    return {
        "latency_ms": {k: round(v, 3) for k, v in summary(ok).items()},
        "rounds_ms": per_round,
        "failures": bench_failures.from_records(every),
    }


def added(ours: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """``ours`` minus ``direct`` at p50 and p99 (both from the same rounds); may be negative."""
    return {p: round(ours[p] - direct[p], 3) for p in ADDED_POINTS if p in ours and p in direct}
