"""The soak: the gateway's resident memory over a long open-loop run at a steady rate.

After a warm-up, the open-loop generator sends ``rate`` req/s in back-to-back windows of
``interval`` seconds (one shared connection pool; records are folded into counts after each
window, so a long run costs the client little memory) and the gateway's RSS is read after
each window. Growth is ``(end - start) / start`` with ``start`` read after the warm-up;
errors are every answer but a 200, the warm-up's included.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from loadtest import generator
from loadtest.bench_modes import UPSTREAMS
from loadtest.payloads import Payload
from loadtest.stats import summary

MB = 2**20


# The soak's client keeps a bounded pool, as a service calling the gateway would (aiohttp's
# default size). Unbounded, the pool grows after every burst that follows a stall and never
# shrinks (aiohttp reuses its connections in turn, so none idles out): the gateway's RSS
# then grew ~20 KB per connection the client had opened, and measured the client.
CLIENT_CONNECTIONS = 100


@dataclass(frozen=True, slots=True)
class SoakSettings:
    seconds: float
    rate: float
    warmup_seconds: float
    interval_seconds: float
    upstream: str


def add_arguments(parser: argparse.ArgumentParser, prefix: str, default_seconds: float) -> None:
    """The soak's options, named ``--{prefix}seconds`` and so on (``soak-`` in the bench)."""
    group = parser.add_argument_group("soak")
    skip = "; 0 skips it" if prefix else ""
    group.add_argument(
        f"--{prefix}seconds",
        dest="soak_seconds",
        type=float,
        default=default_seconds,
        metavar="S",
        help=f"soak length after the warm-up{skip} (default {default_seconds:g})",
    )
    group.add_argument(
        f"--{prefix}rate",
        dest="soak_rate",
        type=float,
        default=1000.0,
        metavar="R",
        help="soak rate in req/s (default 1000)",
    )
    group.add_argument(
        f"--{prefix}warmup-seconds",
        dest="soak_warmup_seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="load before the starting RSS is read (default 10)",
    )
    group.add_argument(
        f"--{prefix}interval-seconds",
        dest="soak_interval_seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="RSS read every S seconds (default 5)",
    )
    group.add_argument(
        f"--{prefix}upstream",
        dest="soak_upstream",
        choices=UPSTREAMS,
        default="static-nginx",
        help="the gateway's upstream (v2 passthrough, 10%% sampling; default static-nginx)",
    )


def settings_from(args: argparse.Namespace) -> SoakSettings:
    return SoakSettings(args.soak_seconds, args.soak_rate, args.soak_warmup_seconds,
                        args.soak_interval_seconds, args.soak_upstream)  # fmt: skip


def windows(seconds: float, interval: float) -> list[float]:
    """Lengths of the back-to-back load windows covering ``seconds`` (the last may be shorter)."""
    if interval <= 0:
        raise ValueError("the interval must be positive")
    out: list[float] = []
    left = seconds
    while left > 1e-9:
        out.append(min(interval, left))
        left -= interval
    return out


def rss_growth(samples: Sequence[int]) -> dict[str, float]:
    """Start (the first sample), end and max RSS in MB, growth of end and max in percent."""
    if not samples or samples[0] <= 0:
        raise ValueError("RSS growth needs a positive first sample")
    start, end, top = samples[0], samples[-1], max(samples)
    return {
        "start_mb": round(start / MB, 1),
        "end_mb": round(end / MB, 1),
        "max_mb": round(top / MB, 1),
        "growth_percent": round((end - start) / start * 100, 2),
        "max_growth_percent": round((top - start) / start * 100, 2),
    }


async def drive(
    base: str,
    payloads: Sequence[Payload],
    settings: SoakSettings,
    rss: Callable[[], int],
) -> dict[str, Any]:
    """Warm up, then soak, reading ``rss()`` after the warm-up and after every window.

    ``windows`` holds per window its end time, RSS, requests, errors and p50/p99 (ms).
    """
    statuses: Counter[int] = Counter()
    warmup_errors = 0
    latencies: list[float] = []
    samples: list[tuple[float, int]] = []
    per_window: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        for length in windows(settings.warmup_seconds, settings.interval_seconds):
            records = await generator.run(base, payloads, settings.rate, length, session=session)
            warmup_errors += sum(1 for r in records if r.status != 200)
        started = time.perf_counter()
        samples.append((0.0, rss()))
        for length in windows(settings.seconds, settings.interval_seconds):
            records = await generator.run(base, payloads, settings.rate, length, session=session)
            statuses.update(r.status for r in records)
            ok = [r.latency * 1000 for r in records if r.status == 200]
            latencies += ok
            samples.append((time.perf_counter() - started, rss()))
            # Per window, so a trend (errors or latency creeping up) shows, not just totals.
            at, now = samples[-1]
            per_window.append({
                "t": round(at, 1), "rss_mb": round(now / MB, 1), "requests": len(records),
                "errors": len(records) - len(ok),
                **{k: round(v, 2) for k, v in summary(ok, (50, 99)).items()},
            })  # fmt: skip
    elapsed = time.perf_counter() - started
    requests = sum(statuses.values())
    return {
        "upstream": settings.upstream,
        "rate": settings.rate,
        "seconds": settings.seconds,
        "warmup_seconds": settings.warmup_seconds,
        "requests": requests,
        "achieved_rate": round(requests / elapsed, 1) if elapsed > 0 else 0.0,
        "errors": requests - statuses[200],
        "error_statuses": {str(s): n for s, n in sorted(statuses.items()) if s != 200},
        "warmup_errors": warmup_errors,
        "latency_ms": {k: round(v, 3) for k, v in summary(latencies).items()},
        "rss": rss_growth([rss for _, rss in samples]),
        "windows": per_window,
    }


def markdown(soak: dict[str, Any]) -> list[str]:
    """The report's soak section."""
    rss, lat = soak["rss"], soak["latency_ms"]
    lines = [
        "## Soak",
        "",
        f"Gateway v2 passthrough (10% sampling) in front of {soak['upstream']}, "
        f"{soak['rate']:g} req/s open loop for {soak['seconds']:g} s after a "
        f"{soak['warmup_seconds']:g} s warm-up ({soak['achieved_rate']:g} req/s achieved).",
        "",
        "| requests | errors | warm-up errors | RSS start MB | RSS end MB | RSS max MB "
        "| growth % | max growth % | p50 ms | p99 ms | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {soak['requests']} | {soak['errors']} | {soak['warmup_errors']} | {rss['start_mb']} "
        f"| {rss['end_mb']} | {rss['max_mb']} | {rss['growth_percent']} "
        f"| {rss['max_growth_percent']} | {lat.get('p50', '')} | {lat.get('p99', '')} "
        f"| {soak.get('peak_rss_mb', '')} |",
        "",
    ]
    outcomes = soak.get("gateway_outcomes")
    if outcomes:
        text = ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items())
        lines += [f"The gateway's outcomes (warm-up included): {text}.", ""]
    return lines
