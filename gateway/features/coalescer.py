"""Concurrent requests' store lookups in one call, and no entity fetched twice at once.

Requests that need the same features (same entity key and refs) join one pending batch
of entity ids. The batch goes out on the next turn of the event loop when no call of
that kind is in flight (an idle gateway adds no wait), else after ``window_seconds`` or as
soon as it holds ``max_entities`` ids, whichever comes first. While ``max_calls_in_flight``
calls of that kind are out, a batch past its window waits for one of them to end and
keeps gathering (a full batch still goes): a store that slows down gets fewer, larger
calls instead of a growing queue of small ones. An entity already in a pending or
in-flight batch is not asked for again: its request waits for that batch (single flight).

Each request keeps its own deadline: it waits for its batches at most ``within`` seconds
and then fails with :class:`~gateway.errors.FeatureStoreTimeout` while the batch goes
on for the others. A failed batch call fails every request waiting for it, with the
call's own error (a store error, or :class:`~gateway.errors.CircuitOpen`).

    coalescer = Coalescer(call, store_url, window_seconds=0.001, max_entities=64,
                          max_calls_in_flight=4)
    columns = await coalescer.lookup(plan, ["c-1", "c-2"], span, within=0.15)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from opentelemetry.trace import Span

from gateway.contracts.feature_plan import FeaturePlan
from gateway.errors import FeatureStoreTimeout, FeatureStoreUnavailable
from gateway.features.feast_client import FeatureValue

Columns = dict[str, list[FeatureValue]]  # ref -> one value per entity id, in order
BatchCall = Callable[[FeaturePlan, list[str], Span], Awaitable[Columns]]
_Key = tuple[str, tuple[str, ...]]


class _Batch:
    """Entity ids that go to the store in one call, and the call's answer."""

    __slots__ = ("done", "entities", "handle", "index", "parent", "plan")

    def __init__(self, plan: FeaturePlan, parent: Span, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.parent = parent  # the span of the request that opened the batch
        self.entities: list[str] = []
        self.index: dict[str, int] = {}
        self.done: asyncio.Future[Columns] = loop.create_future()
        # A waiter that gave up (its deadline) never reads the outcome: mark it read.
        self.done.add_done_callback(_read_outcome)
        self.handle: asyncio.Handle | None = None

    def add(self, entity: str) -> None:
        if entity not in self.index:
            self.index[entity] = len(self.entities)
            self.entities.append(entity)


def _cancelling() -> bool:
    """Whether the running task is being cancelled (the app shutting down)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _read_outcome(future: asyncio.Future[Columns]) -> None:
    if not future.cancelled():
        future.exception()


class Coalescer:
    """Batches lookups into store calls made by ``call``; one per app, on one event loop."""

    def __init__(
        self,
        call: BatchCall,
        store_url: str,
        *,
        window_seconds: float,
        max_entities: int,
        max_calls_in_flight: int | None = None,
    ) -> None:
        self._call = call
        self._url = store_url
        self._window = window_seconds
        self._max = max_entities
        self._max_flying = max_calls_in_flight
        self._pending: dict[_Key, _Batch] = {}
        self._flying: dict[_Key, dict[str, _Batch]] = {}  # entity -> its in-flight batch
        self._calls_in_flight: dict[_Key, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0  # store calls made
        self.lookups = 0  # requests served by them

    async def lookup(
        self, plan: FeaturePlan, entity_ids: Sequence[str], parent: Span, within: float | None
    ) -> Columns:
        """``{ref: [value per entity id]}`` for ``entity_ids`` (unique), like the store's
        answer; raises the batch call's error, or ``FeatureStoreTimeout`` after ``within``."""
        key: _Key = (plan.entity_key, plan.refs)
        loop = asyncio.get_running_loop()
        self.lookups += 1
        where: list[_Batch] = []
        for entity in entity_ids:
            batch = self._flying.get(key, {}).get(entity)
            if batch is None:
                pending = self._pending.get(key)
                batch = pending if pending is not None else self._open(key, plan, parent, loop)
                batch.add(entity)
                if len(batch.entities) >= self._max:
                    self._flush(key, full=True)
            where.append(batch)
        batches = list(dict.fromkeys(where))
        waiting = asyncio.gather(*(asyncio.shield(b.done) for b in batches))
        try:
            await (waiting if within is None else asyncio.wait_for(waiting, max(within, 0.0)))
        except TimeoutError as exc:
            raise FeatureStoreTimeout(self._url, f"no answer within {within:g} s") from exc
        return {
            ref: [b.done.result()[ref][b.index[e]] for b, e in zip(where, entity_ids, strict=True)]
            for ref in plan.refs
        }

    def _open(
        self, key: _Key, plan: FeaturePlan, parent: Span, loop: asyncio.AbstractEventLoop
    ) -> _Batch:
        batch = self._pending[key] = _Batch(plan, parent, loop)
        if self._calls_in_flight.get(key, 0) == 0 or self._window <= 0:
            batch.handle = loop.call_soon(self._flush, key)
        else:
            batch.handle = loop.call_later(self._window, self._flush, key)
        return batch

    def _flush(self, key: _Key, *, full: bool = False) -> None:
        batch = self._pending.get(key)
        if batch is None:
            return
        if batch.handle is not None:
            batch.handle.cancel()
            batch.handle = None
        in_flight = self._calls_in_flight.get(key, 0)
        if not full and self._max_flying is not None and in_flight >= self._max_flying:
            return  # held: the next call of this kind to end sends it
        del self._pending[key]
        flying = self._flying.setdefault(key, {})
        for entity in batch.entities:
            flying[entity] = batch
        self._calls_in_flight[key] = self._calls_in_flight.get(key, 0) + 1
        self.calls += 1
        task = asyncio.get_running_loop().create_task(self._run(key, batch))
        self._tasks.add(task)  # a strong reference until it ends
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: _Key, batch: _Batch) -> None:
        try:
            batch.done.set_result(await self._call(batch.plan, batch.entities, batch.parent))
        except asyncio.CancelledError:
            # Shutting down: the waiters get an error, never a cancellation of their own.
            batch.done.set_exception(FeatureStoreUnavailable(self._url, "lookup cancelled"))
            raise
        except Exception as exc:  # the call's error is every waiter's error
            batch.done.set_exception(exc)
        finally:
            self._calls_in_flight[key] -= 1
            flying = self._flying.get(key, {})
            for entity in batch.entities:
                if flying.get(entity) is batch:
                    del flying[entity]
            held = self._pending.get(key)
            if held is not None and held.handle is None and not _cancelling():
                self._flush(key)
