"""An open-loop load generator: requests leave on a fixed schedule, whatever answers do.

Request ``i`` is due at ``start + i / rate``. Its latency is measured from that intended
time, not from when it actually left, so a stalled server shows up as the latency every
queued caller would have seen (no coordinated omission). The generator never waits for
an answer before sending the next request; ``max_in_flight`` only bounds memory when a
server stops answering altogether (requests over it are recorded as ``status=-1``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp
import orjson

from loadtest.payloads import Payload

Clock = Callable[[], float]
_HEADERS = {"Content-Type": "application/json"}


@dataclass(slots=True)
class Record:
    """One request as the client saw it. ``status`` 0: connection error, -1: not sent."""

    intended: float  # seconds after the run's start when it was due
    latency: float  # seconds from ``intended`` to the answer (or the error)
    status: int
    label: int
    variant: str | None = None
    served_by: str | None = None
    feature_source: str | None = None
    score: float | None = None
    api: str | None = None  # v1 or v2, from the request's path


def due_times(rate: float, duration: float) -> list[float]:
    """Offsets (s) at which requests are due for ``rate`` req/s over ``duration`` s."""
    if rate <= 0 or duration <= 0:
        return []
    return [i / rate for i in range(int(rate * duration))]


def read_score(body: bytes) -> float | None:
    """The first row's score of a v1 (``predictions``) or v2 (``probabilities``) answer."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    predictions = doc.get("predictions")
    if isinstance(predictions, list) and predictions and isinstance(predictions[0], dict):
        score = predictions[0].get("score")
        return float(score) if isinstance(score, int | float) else None
    for output in doc.get("outputs") or ():
        if isinstance(output, dict) and output.get("name") == "probabilities":
            data = output.get("data") or []
            flat = data[0] if data and isinstance(data[0], list) else data
            return float(flat[1]) if len(flat) > 1 and isinstance(flat[1], int | float) else None
    return None


async def _one(
    session: aiohttp.ClientSession, url: str, payload: Payload, due: float, clock: Clock,
    start: float, limit: aiohttp.ClientTimeout,
) -> Record:  # fmt: skip
    try:
        async with session.post(
            url, data=payload.body, headers=_HEADERS, timeout=limit
        ) as response:
            body = await response.read()
            headers = response.headers
            record = Record(due, 0.0, response.status, payload.label,
                            headers.get("x-gateway-variant"), headers.get("x-gateway-served-by"),
                            headers.get("x-gateway-feature-source"),
                            read_score(body) if response.status == 200 else None)  # fmt: skip
    except (aiohttp.ClientError, TimeoutError, OSError):
        record = Record(due, 0.0, 0, payload.label)
    record.latency = clock() - (start + due)
    record.api = "v2" if payload.path.startswith("/v2/") else "v1"
    return record


async def run(
    base_url: str,
    payloads: Sequence[Payload] | Iterator[Payload],
    rate: float,
    duration: float,
    *,
    session: aiohttp.ClientSession | None = None,
    offset: float = 0.0,
    request_timeout: float = 5.0,
    max_in_flight: int = 10_000,
    clock: Clock = time.perf_counter,
) -> list[Record]:
    """Send ``rate`` req/s for ``duration`` s, cycling through ``payloads``.

    A sequence is cycled from its first payload on every call; an iterator (endless, e.g.
    ``payloads.zipf_payloads``) is drawn from where the previous call left it, so the
    phases of a scenario continue one sequence. ``offset`` shifts every record's ``intended`` time (phases of a scenario share one
    timeline). Returns one record per scheduled request, in schedule order.
    """
    own_session = session is None
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    client_timeout = aiohttp.ClientTimeout(total=request_timeout)
    tasks: list[asyncio.Task[Record] | Record] = []
    in_flight = 0

    def finished(_: object) -> None:
        nonlocal in_flight
        in_flight -= 1

    try:
        start = clock()
        cycle = payloads if isinstance(payloads, Iterator) else itertools.cycle(payloads)
        for due in due_times(rate, duration):
            payload = next(cycle)
            wait = start + due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if in_flight >= max_in_flight:
                tasks.append(Record(due, clock() - (start + due), -1, payload.label))
                continue
            url = base_url + payload.path
            task = asyncio.create_task(
                _one(session, url, payload, due, clock, start, client_timeout)
            )
            in_flight += 1
            task.add_done_callback(finished)
            tasks.append(task)
        records = [t if isinstance(t, Record) else await t for t in tasks]
    finally:
        if own_session:
            await session.close()
    for record in records:
        record.intended += offset
    return records
