"""The coalescer on a fake batch call: one call per gathered batch, single flight, the size
cap, each waiter's own deadline, and a failed call failing only its own waiters."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import INVALID_SPAN

from gateway.contracts.feature_plan import FeaturePlan
from gateway.errors import FeatureStoreTimeout, FeatureStoreUnavailable
from gateway.features.coalescer import Coalescer, Columns
from gateway.features.feast_client import FeatureValue

PLAN = FeaturePlan(
    model="fraud", entity_key="customer_id", features=(), refs=("v:a", "v:b"), max_age=60.0
)


class FakeStore:
    """Answers ``<ref>@<entity>`` per value after ``delay``; records every call's entities."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[list[str]] = []

    async def __call__(self, plan: FeaturePlan, entities: list[str], parent: object) -> Columns:
        self.calls.append(list(entities))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise FeatureStoreUnavailable("http://store.test", "refused")
        return {
            ref: [FeatureValue(f"{ref}@{e}", "PRESENT", 0.0) for e in entities] for ref in plan.refs
        }


def coalescer(
    store: FakeStore, window: float = 0.01, max_entities: int = 64, max_flying: int | None = None
) -> Coalescer:
    return Coalescer(store, "http://store.test", window_seconds=window, max_entities=max_entities,
                     max_calls_in_flight=max_flying)  # fmt: skip


def values(columns: Columns, ref: str = "v:a") -> list[object]:
    return [v.value for v in columns[ref]]


def test_lookups_of_one_turn_share_one_call_and_each_gets_its_own_columns() -> None:
    async def scenario() -> tuple[list[Columns], FakeStore, Coalescer]:
        store = FakeStore()
        batcher = coalescer(store)
        answers = await asyncio.gather(
            batcher.lookup(PLAN, ["c-1", "c-2"], INVALID_SPAN, None),
            batcher.lookup(PLAN, ["c-3"], INVALID_SPAN, 1.0),
            batcher.lookup(PLAN, ["c-2", "c-1"], INVALID_SPAN, 1.0),
        )
        return answers, store, batcher

    answers, store, batcher = asyncio.run(scenario())
    assert store.calls == [["c-1", "c-2", "c-3"]]
    assert values(answers[0]) == ["v:a@c-1", "v:a@c-2"]
    assert values(answers[1], "v:b") == ["v:b@c-3"]
    assert values(answers[2]) == ["v:a@c-2", "v:a@c-1"]
    assert (batcher.calls, batcher.lookups) == (1, 3)


def test_an_entity_in_flight_is_not_fetched_again_and_new_ones_wait_for_the_window() -> None:
    async def scenario() -> tuple[Columns, Columns, FakeStore]:
        store = FakeStore(delay=0.05)
        batcher = coalescer(store, window=0.01)
        first = asyncio.ensure_future(batcher.lookup(PLAN, ["c-1"], INVALID_SPAN, None))
        await asyncio.sleep(0.005)  # the first call is in flight
        second = await batcher.lookup(PLAN, ["c-1", "c-9"], INVALID_SPAN, None)
        return await first, second, store

    first, second, store = asyncio.run(scenario())
    assert store.calls == [["c-1"], ["c-9"]]  # c-1 came from the call already in flight
    assert values(first) == ["v:a@c-1"]
    assert values(second) == ["v:a@c-1", "v:a@c-9"]


def test_a_full_batch_goes_out_at_once() -> None:
    async def scenario() -> FakeStore:
        store = FakeStore()
        batcher = coalescer(store, max_entities=2)
        await asyncio.gather(
            *(batcher.lookup(PLAN, [f"c-{i}"], INVALID_SPAN, None) for i in range(5))
        )
        return store

    assert asyncio.run(scenario()).calls == [["c-0", "c-1"], ["c-2", "c-3"], ["c-4"]]


@pytest.mark.parametrize(("max_flying", "calls"), [(None, 8), (1, 2), (2, 3)])
def test_a_slow_store_gets_fewer_larger_calls_at_the_in_flight_cap(
    max_flying: int | None, calls: int
) -> None:
    """Lookups arriving every 20 ms at a store that takes 500 ms: uncapped, each window
    makes its own call; at the cap, they gather until a call ends, and all are answered."""

    async def scenario() -> tuple[list[Columns], FakeStore]:
        store = FakeStore(delay=0.5)
        batcher = coalescer(store, window=0.001, max_flying=max_flying)
        waits = []
        for i in range(8):
            waits.append(asyncio.ensure_future(batcher.lookup(PLAN, [f"c-{i}"], INVALID_SPAN, 5.0)))
            await asyncio.sleep(0.02)
        return await asyncio.gather(*waits), store

    answers, store = asyncio.run(scenario())
    assert [values(a) for a in answers] == [[f"v:a@c-{i}"] for i in range(8)]
    assert len(store.calls) == calls
    assert sorted(e for call in store.calls for e in call) == [f"c-{i}" for i in range(8)]


def test_each_waiter_keeps_its_own_deadline_while_the_call_goes_on() -> None:
    async def scenario() -> tuple[BaseException | Columns, Columns]:
        store = FakeStore(delay=0.1)
        batcher = coalescer(store)
        hurried, patient = await asyncio.gather(
            batcher.lookup(PLAN, ["c-1"], INVALID_SPAN, 0.01),
            batcher.lookup(PLAN, ["c-1"], INVALID_SPAN, 1.0),
            return_exceptions=True,
        )
        assert not isinstance(patient, BaseException)
        return hurried, patient

    hurried, patient = asyncio.run(scenario())
    assert isinstance(hurried, FeatureStoreTimeout)
    assert values(patient) == ["v:a@c-1"]


def test_a_failed_call_fails_its_waiters_and_the_next_batch_is_asked_again() -> None:
    async def scenario() -> tuple[list[object], Columns, FakeStore]:
        store = FakeStore(fail=True)
        batcher = coalescer(store)
        failed = await asyncio.gather(
            batcher.lookup(PLAN, ["c-1"], INVALID_SPAN, None),
            batcher.lookup(PLAN, ["c-2"], INVALID_SPAN, None),
            return_exceptions=True,
        )
        store.fail = False
        return list(failed), await batcher.lookup(PLAN, ["c-1"], INVALID_SPAN, None), store

    failed, later, store = asyncio.run(scenario())
    assert all(isinstance(f, FeatureStoreUnavailable) for f in failed)
    assert values(later) == ["v:a@c-1"]
    assert store.calls == [["c-1", "c-2"], ["c-1"]]


@pytest.mark.parametrize("refs", [("v:a",), ("v:a", "v:c")])
def test_different_feature_lists_never_share_a_call(refs: tuple[str, ...]) -> None:
    other = FeaturePlan(
        model="other", entity_key="customer_id", features=(), refs=refs, max_age=60.0
    )

    async def scenario() -> FakeStore:
        store = FakeStore()
        batcher = coalescer(store)
        await asyncio.gather(
            batcher.lookup(PLAN, ["c-1"], INVALID_SPAN, None),
            batcher.lookup(other, ["c-1"], INVALID_SPAN, None),
        )
        return store

    assert asyncio.run(scenario()).calls == [["c-1"], ["c-1"]]
