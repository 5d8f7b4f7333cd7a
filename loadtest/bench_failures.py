"""Failures as the clients saw them, and the bound a figure's measurement must keep to.

The gateway's own counters cannot say what failed: a request that never reached it, or
that no rung was tried for (``gateway_served_by_total{rung="none"}`` only counts models
with lower rungs), is missing from them. So failures are counted at the client: wrk's
error answers ("Non-2xx or 3xx responses", statuses of 400 and more) and socket errors
(connect, read, write, timeout), and every open-loop answer but a 200 (status 0: a
connection error or the client's timeout; -1: never sent). A request wrk counted as a
timeout and whose answer came later is counted twice (once failed): the bias is towards
failure, never away from it.

Counts are plain dicts (they go to the report's JSON as they are):
``{"requests": attempted, "failed": n, "kinds": {kind: n}}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final

from loadtest.generator import Record
from loadtest.wrk import WrkResult

# A figure counts only if at most this share of its measurement's requests failed.
MAX_FAILED_PERCENT: Final = 0.1

Counts = dict[str, Any]


def _counts(requests: int, kinds: dict[str, int]) -> Counts:
    kept = {k: n for k, n in sorted(kinds.items()) if n}
    return {"requests": requests, "failed": sum(kept.values()), "kinds": kept}


def from_wrk(results: Sequence[WrkResult]) -> Counts:
    """wrk runs' failures; attempted requests are the answers read plus the socket errors."""
    kinds = {
        "non_2xx": sum(r.non_2xx for r in results),
        "connect": sum(r.connect for r in results),
        "read": sum(r.read for r in results),
        "write": sum(r.write for r in results),
        "timeout": sum(r.timeout for r in results),
    }
    return _counts(sum(r.requests + r.socket_errors for r in results), kinds)


def from_records(records: Sequence[Record]) -> Counts:
    """Open-loop records' failures: every status but 200, by status."""
    statuses = Counter(r.status for r in records if r.status != 200)
    names = {0: "connection_error_or_timeout", -1: "not_sent"}
    kinds = {names.get(s, f"status_{s}"): n for s, n in statuses.items()}
    return _counts(len(records), kinds)


def merged(parts: Iterable[Counts]) -> Counts:
    """Several measurements' counts as one."""
    requests = 0
    kinds: Counter[str] = Counter()
    for part in parts:
        requests += part["requests"]
        kinds.update(part["kinds"])
    return _counts(requests, dict(kinds))


def failed_percent(counts: Counts) -> float:
    if counts["requests"] <= 0:
        return 100.0 if counts["failed"] else 0.0
    return float(counts["failed"] / counts["requests"] * 100)


def exceeds(counts: Counts | None, bound_percent: float = MAX_FAILED_PERCENT) -> bool:
    """More failures than the bound allows (a measurement with no requests made fails too:
    it measured nothing)."""
    if counts is None:
        return False
    if counts["requests"] <= 0:
        return True
    return failed_percent(counts) > bound_percent


def describe(counts: Counts) -> str:
    """``"7912 of 110000 failed (7.19%: connection_error_or_timeout 7912)"``."""
    text = f"{counts['failed']} of {counts['requests']} failed"
    if counts["failed"]:
        kinds = ", ".join(f"{k} {n}" for k, n in counts["kinds"].items())
        text += f" ({failed_percent(counts):.2f}%: {kinds})"
    return text
