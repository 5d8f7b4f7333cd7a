"""The Feast feature server's HTTP API (``POST /get-online-features``), over aiohttp.

One call per request batch::

    {"features": ["customer_stats:avg_amount_30d", ...],
     "entities": {"customer_id": ["c-0042", "c-0043"]},
     "full_feature_names": true}

The answer is column-major, one ``results`` entry per name in ``metadata.feature_names``
(not in the request's order; the entity column comes back too), with full names
``view__feature``. Values whose status is ``NOT_FOUND`` or ``NULL_VALUE`` (or ``null``)
are returned as missing. Every foreign error is translated here into
:class:`~gateway.errors.FeatureStoreError`; Feast's error bodies (HTTP 500 with a
JSON-encoded string) are decoded into the message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gateway.errors import FeatureStoreBadResponse, FeatureStoreTimeout, FeatureStoreUnavailable
from gateway.features.freshness import NO_TIMESTAMP, parse_event_timestamp
from gateway.resilience.retry_budget import RetryBudget

_PRESENT = "PRESENT"
# The connection failed before the store answered: refused, reset, closed (aiohttp
# raises ClientOSError, or its subclass ClientConnectorError, for refused and reset).
_DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
_HEADERS = {"Content-Type": "application/json"}  # Feast answers 422 without it


@dataclass(frozen=True, slots=True)
class FeatureValue:
    """One feature of one entity; ``value`` is ``None`` when the store has none."""

    value: Any
    status: str
    event_time: float  # seconds since the epoch; NO_TIMESTAMP when the store has none

    @property
    def found(self) -> bool:
        return self.value is not None and self.status == _PRESENT


def full_name(ref: str) -> str:
    """Feast's full feature name for ``view:feature``: ``view__feature``."""
    return ref.replace(":", "__", 1)


def _retrieve(attempt: asyncio.Future[tuple[int, bytes]]) -> None:
    """Mark a finished attempt's error as seen: a lost race's failure is expected, not news
    (asyncio would log "Task exception was never retrieved" for it)."""
    if not attempt.cancelled():
        attempt.exception()


class FeastClient:
    """Looks up online features; the session is owned (opened, closed) by the app."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        timeout_seconds: float,
        *,
        retry_dropped: bool = True,
        hedge_after_seconds: float | None = None,
        hedge_budget: RetryBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._endpoint = f"{url}/get-online-features"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._retry_dropped = retry_dropped
        self._hedge_after = hedge_after_seconds
        # Hedges stay a bounded share of lookups (None: no bound): when every lookup is slow
        # (the store's machine short of CPU), a second copy of each only adds to its queue.
        self.hedge_budget = hedge_budget
        self._clock = clock
        self.retries = 0  # lookups tried again after a dropped connection
        self.hedges = 0  # lookups sent a second time because the first was slow

    @property
    def hedges_over_budget(self) -> int:
        return 0 if self.hedge_budget is None else self.hedge_budget.refused

    async def healthy(self) -> bool:
        """Whether the store's ``GET /health`` answers 200 within the lookup timeout."""
        try:
            async with self._session.get(f"{self.url}/health", timeout=self._timeout) as answer:
                await answer.read()
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def online_features(
        self,
        refs: Sequence[str],
        entity_key: str,
        entity_ids: Sequence[str],
        within_seconds: float | None = None,
    ) -> dict[str, list[FeatureValue]]:
        """Values of ``refs`` for ``entity_ids``: ``{ref: [value per entity id, in order]}``.

        ``within_seconds`` (the request's remaining budget) caps the store's timeout.
        Raises ``FeatureStoreUnavailable``, ``FeatureStoreTimeout`` or
        ``FeatureStoreBadResponse`` (an error status, with Feast's message, or an answer
        that lacks a requested feature or has the wrong number of values).
        """
        body = orjson.dumps(
            {
                "features": list(refs),
                "entities": {entity_key: list(entity_ids)},
                "full_feature_names": True,
            }
        )
        budget = self._timeout.total or float("inf")
        if within_seconds is not None:
            # The request's remaining budget is shorter than the store's own timeout.
            budget = max(min(budget, within_seconds), 0.001)
        started = self._clock()
        try:
            status, payload = await self._answer(body, budget)
        except _DROPPED as exc:
            # Refused, reset or closed before an answer: a restarting worker, a connection
            # the store closed while idle. One more try on a fresh connection, in budget.
            left = budget - (self._clock() - started)
            if not self._retry_dropped or left <= 0.001:
                raise FeatureStoreUnavailable(self.url, _describe(exc)) from exc
            self.retries += 1
            try:
                status, payload = await self._answer(body, left)
            except _DROPPED as again:
                raise FeatureStoreUnavailable(self.url, _describe(again)) from again
        if status != 200:
            raise FeatureStoreBadResponse(self.url, f"HTTP {status}: {error_message(payload)}")
        return self._parse(payload, refs, len(entity_ids))

    async def _answer(self, body: bytes, budget: float) -> tuple[int, bytes]:
        """The first answer to ``body``: a second identical POST (a hedge) goes out when the
        first has not answered after ``hedge_after_seconds``, on another pooled connection,
        which a store with several workers or replicas can answer while the first one is
        busy (a worker starting up, a GC pause), when the hedge budget has one left. Both
        failing raises the first's error."""
        hedge_after = self._hedge_after
        if hedge_after is None or hedge_after >= budget:
            return await self._post(body, budget)
        if self.hedge_budget is not None:
            self.hedge_budget.deposit()  # every lookup that could be hedged earns a share
        started = self._clock()
        first: asyncio.Future[tuple[int, bytes]] = asyncio.ensure_future(self._post(body, budget))
        first.add_done_callback(_retrieve)
        attempts = [first]
        try:
            done, _ = await asyncio.wait({first}, timeout=hedge_after)
            if done:
                return first.result()
            if self.hedge_budget is not None and not self.hedge_budget.try_withdraw():
                return await first
            self.hedges += 1
            second = asyncio.ensure_future(self._post(body, budget - (self._clock() - started)))
            second.add_done_callback(_retrieve)
            attempts.append(second)
            pending: set[asyncio.Future[tuple[int, bytes]]] = {first, second}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for attempt in done:
                    if attempt.exception() is None:
                        return attempt.result()
            return first.result()  # both failed: raises the first one's error
        finally:
            # The loser, or both when the caller gave up (its deadline): never left running.
            for attempt in attempts:
                attempt.cancel()

    async def _post(self, body: bytes, budget: float) -> tuple[int, bytes]:
        """One POST; ``_DROPPED`` errors pass through, the others become store errors."""
        timeout = aiohttp.ClientTimeout(total=budget)
        try:
            async with self._session.post(
                self._endpoint, data=body, headers=_HEADERS, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise FeatureStoreTimeout(self.url, f"no answer within {budget:g} s") from exc
        except _DROPPED:
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise FeatureStoreUnavailable(self.url, _describe(exc)) from exc

    def _parse(
        self, payload: bytes, refs: Sequence[str], count: int
    ) -> dict[str, list[FeatureValue]]:
        try:
            doc = orjson.loads(payload)
            names = doc["metadata"]["feature_names"]
            results = doc["results"]
            columns = dict(zip(names, results, strict=True))
            parsed = {ref: _column(columns[full_name(ref)], count) for ref in refs}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FeatureStoreBadResponse(
                self.url, f"unreadable answer ({type(exc).__name__}: {exc})"
            ) from exc
        return parsed


def _column(result: dict[str, Any], count: int) -> list[FeatureValue]:
    values, statuses, stamps = result["values"], result["statuses"], result["event_timestamps"]
    if not (len(values) == len(statuses) == len(stamps) == count):
        raise ValueError(f"expected {count} values per feature")
    column = []
    for value, status, stamp in zip(values, statuses, stamps, strict=True):
        found = value is not None and status == _PRESENT
        event_time = parse_event_timestamp(stamp) if found and stamp else NO_TIMESTAMP
        column.append(FeatureValue(value if found else None, status, event_time))
    return column


def error_message(payload: bytes) -> str:
    """Feast's error text: a JSON-encoded string, FastAPI's ``{"detail": ...}``, or raw text."""
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:300].decode("utf-8", "replace") or "<empty body>"
    if isinstance(decoded, str):
        # The server JSON-encodes str(exception), itself often a quoted repr: decode twice.
        text = decoded
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        return text[:300]
    if isinstance(decoded, dict) and "detail" in decoded:
        return str(decoded["detail"])[:300]
    return payload[:300].decode("utf-8", "replace")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
