"""Breaker states over a scenario run, polled from the gateway's ``GET /admin/status``.

A background task asks for the status about every 100 ms with a short timeout and records
one :class:`BreakerSample` per breaker: each model's upstream endpoints (named like the
gateway names them, ``<model>/<upstream>``, ``<model>/<upstream>#2`` for a replica), the
canary's, and the feature store's (``feature_store``) when the status shows it. A failed
poll (the gateway restarting, stalled, answering non-200) records ``unknown`` for every
breaker seen so far; it is never an error, and the load does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import aiohttp
import orjson

TOKEN_VARIABLE = "GATEWAY_ADMIN_TOKEN"  # what gateway/api/admin.py reads
FEATURE_STORE = "feature_store"
State = Literal["closed", "open", "half_open", "unknown"]
_KNOWN: dict[object, State] = {"closed": "closed", "open": "open", "half_open": "half_open"}


@dataclass(frozen=True, slots=True)
class BreakerSample:
    t: float  # seconds after the run's start when the poll finished
    breaker: str
    state: State

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"t": round(self.t, 3)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BreakerSample:
        return cls(float(raw["t"]), str(raw["breaker"]), _KNOWN.get(raw.get("state"), "unknown"))


@dataclass(frozen=True, slots=True)
class Band:
    """``breaker`` was in ``state`` from ``start`` to ``end`` (seconds after the start)."""

    breaker: str
    start: float
    end: float
    state: State


def _state(breaker: object) -> State:
    state = breaker.get("state") if isinstance(breaker, Mapping) else None
    return _KNOWN.get(state, "unknown") if isinstance(state, str) else "unknown"


def _upstream_states(model: str, guard: object) -> list[tuple[str, State]]:
    """One upstream guard's breakers: every endpoint's when it has replicas, else its own."""
    if not isinstance(guard, Mapping):
        return []
    endpoints = guard.get("endpoints")
    if isinstance(endpoints, list) and endpoints:
        return [
            (f"{model}/{e.get('name')}", _state(e.get("breaker")))
            for e in endpoints
            if isinstance(e, Mapping)
        ]
    return [(f"{model}/{guard.get('upstream')}", _state(guard.get("breaker")))]


def samples_from_status(doc: object, t: float) -> list[BreakerSample]:
    """The breaker states in one ``/admin/status`` document; never raises on an odd one."""
    if not isinstance(doc, Mapping):
        return []
    states: list[tuple[str, State]] = []
    models = doc.get("models")
    for model, status in models.items() if isinstance(models, Mapping) else ():
        if isinstance(status, Mapping):
            states += _upstream_states(model, status.get("primary"))
            states += _upstream_states(model, status.get("canary"))
    store = doc.get(FEATURE_STORE)
    # The gateway's status does not show the store's breaker yet; take it when it does.
    if isinstance(store, Mapping) and "breaker" in store:
        states.append((FEATURE_STORE, _state(store["breaker"])))
    return [BreakerSample(t, name, state) for name, state in states]


async def fetch_status(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    limit: aiohttp.ClientTimeout,
) -> object | None:
    """The status document, or None when the poll failed (refused, timed out, not a 200)."""
    try:
        async with session.get(url, headers=headers, timeout=limit) as response:
            if response.status != 200:
                return None
            body = await response.read()
        parsed: object = orjson.loads(body)
        return parsed
    except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError):
        return None


async def poll_status(
    base_url: str,
    token: str,
    stop: asyncio.Event,
    handle: Callable[[object | None, float], None],
    *,
    start: float,
    interval: float,
    request_timeout: float,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Read ``/admin/status`` every ``interval`` s until ``stop`` is set; hand each document
    (None: the poll failed) to ``handle`` with its time on ``clock`` minus ``start``."""
    url = f"{base_url}/admin/status"
    headers = {"authorization": f"Bearer {token}"}
    limit = aiohttp.ClientTimeout(total=request_timeout)
    # Its own session with one kept-alive connection: no new socket per poll.
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        while not stop.is_set():
            began = clock()
            doc = await fetch_status(session, url, headers, limit)
            handle(doc, clock() - start)
            wait = max(0.0, interval - (clock() - began))
            with contextlib.suppress(TimeoutError):  # the interval passed
                await asyncio.wait_for(stop.wait(), wait)


async def poll_breakers(
    base_url: str,
    token: str,
    stop: asyncio.Event,
    *,
    start: float,
    interval: float = 0.1,
    request_timeout: float = 0.5,
    clock: Callable[[], float] = time.perf_counter,
) -> list[BreakerSample]:
    """Poll ``/admin/status`` every ``interval`` s until ``stop`` is set; samples on
    ``clock`` minus ``start`` (the run's timeline, like the records and the faults)."""
    samples: list[BreakerSample] = []
    seen: dict[str, None] = {}  # ordered: breakers of earlier polls, for unknown samples

    def handle(doc: object | None, t: float) -> None:
        found = samples_from_status(doc, t) if doc is not None else []
        if found:
            seen.update(dict.fromkeys(s.breaker for s in found))
        else:
            found = [BreakerSample(t, name, "unknown") for name in seen]
        samples.extend(found)

    await poll_status(base_url, token, stop, handle, start=start, interval=interval,
                      request_timeout=request_timeout, clock=clock)  # fmt: skip
    return samples


def breaker_names(samples: Iterable[BreakerSample]) -> list[str]:
    """Breakers in the order they first appear."""
    return list(dict.fromkeys(s.breaker for s in samples))


def bands(samples: Sequence[BreakerSample]) -> list[Band]:
    """Runs of one state per breaker: a sample holds until the breaker's next sample."""
    out: list[Band] = []
    for name in breaker_names(samples):
        mine = sorted((s for s in samples if s.breaker == name), key=lambda s: s.t)
        run_start = 0
        for i in range(1, len(mine) + 1):
            if i == len(mine) or mine[i].state != mine[run_start].state:
                end = mine[i].t if i < len(mine) else mine[-1].t
                out.append(Band(name, mine[run_start].t, end, mine[run_start].state))
                run_start = i
    return out


def changes(samples: Sequence[BreakerSample]) -> dict[str, list[tuple[float, State]]]:
    """Per breaker, when its known state changed (its first known sample counts);
    ``unknown`` samples are left out, so open, unknown, open is one opening."""
    out: dict[str, list[tuple[float, State]]] = {}
    for sample in sorted(samples, key=lambda s: s.t):
        if sample.state == "unknown":
            continue
        seen = out.setdefault(sample.breaker, [])
        if not seen or seen[-1][1] != sample.state:
            seen.append((sample.t, sample.state))
    return out


@dataclass(frozen=True, slots=True)
class AfterFault:
    """When ``breaker`` first opened after the fault at ``fault_at``, and closed after that."""

    breaker: str
    fault_at: float
    opened: float | None
    closed: float | None


def after_faults(
    samples: Sequence[BreakerSample], fault_times: Sequence[float]
) -> list[AfterFault]:
    """Per breaker that ever left closed, per fault: its first opening at or after the fault
    and the first closing after that opening (or after the fault when it did not open)."""
    out = []
    for name, moves in changes(samples).items():
        if all(state == "closed" for _, state in moves):
            continue
        for fault_at in fault_times:
            opened = next((t for t, s in moves if t >= fault_at and s == "open"), None)
            since = fault_at if opened is None else opened
            closed = next((t for t, s in moves if t > since and s == "closed"), None)
            out.append(AfterFault(name, fault_at, opened, closed))
    return out
