"""The bulkhead, the retry budget and the client's deadline, without sleeping on real time."""

from __future__ import annotations

import asyncio

import pytest

from gateway.contracts.problems import ContractViolation
from gateway.errors import BulkheadFull
from gateway.resilience.bulkhead import Bulkhead
from gateway.resilience.deadline import Deadline, client_timeout_ms
from gateway.resilience.retry_budget import RetryBudget


def test_bulkhead_limits_concurrency_queues_briefly_and_refuses_beyond() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("v1", max_concurrent=2, max_queue=1)
        await bulkhead.acquire(0.0)
        await bulkhead.acquire(0.0)
        assert bulkhead.active == 2
        queued = asyncio.create_task(bulkhead.acquire(10.0))
        await asyncio.sleep(0)
        assert bulkhead.queued == 1
        with pytest.raises(BulkheadFull, match="bulkhead full"):
            await bulkhead.acquire(10.0)  # the queue is full: refused at once
        bulkhead.release()  # the slot passes to the queued caller
        await queued
        assert (bulkhead.active, bulkhead.queued) == (2, 0)
        bulkhead.release()
        bulkhead.release()
        assert bulkhead.active == 0
        assert bulkhead.rejected == 1

    asyncio.run(scenario())


def test_bulkhead_queue_wait_is_bounded_and_cancellation_leaks_no_slot() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("v1", max_concurrent=1, max_queue=4)
        await bulkhead.acquire(0.0)
        with pytest.raises(BulkheadFull, match="queue wait"):
            await bulkhead.acquire(0.001)
        assert bulkhead.queued == 0
        waiter = asyncio.create_task(bulkhead.acquire(10.0))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert bulkhead.queued == 0
        bulkhead.release()
        assert bulkhead.active == 0
        await bulkhead.acquire(0.0)  # the slot is free again
        assert bulkhead.active == 1

    asyncio.run(scenario())


def test_bulkhead_without_a_queue_refuses_at_once() -> None:
    async def scenario() -> None:
        bulkhead = Bulkhead("v1", max_concurrent=1, max_queue=0)
        await bulkhead.acquire(1.0)
        with pytest.raises(BulkheadFull):
            await bulkhead.acquire(1.0)

    asyncio.run(scenario())


def test_retry_budget_allows_a_percent_of_requests_plus_the_floor() -> None:
    budget = RetryBudget(percent=20, min_retries=2)
    granted = 0
    for _ in range(100):
        budget.deposit()
        while budget.try_withdraw():  # a failing upstream: every request wants retries
            granted += 1
    assert granted <= 100 * 0.2 + 2
    assert granted >= 100 * 0.2 - 1
    assert budget.refused >= 100


def test_a_zero_budget_retries_only_the_floor() -> None:
    budget = RetryBudget(percent=0, min_retries=1)
    for _ in range(10):
        budget.deposit()
    assert [budget.try_withdraw() for _ in range(3)] == [True, False, False]


def test_deadline_counts_down_on_the_injected_clock() -> None:
    now = [100.0]
    deadline = Deadline.after(0.5, lambda: now[0])
    now[0] += 0.2
    assert deadline.remaining() == pytest.approx(0.3)


def test_client_timeout_from_header_or_parameters() -> None:
    assert client_timeout_ms({"x-request-timeout-ms": "250"}) == 250.0
    assert client_timeout_ms({}, {"parameters": {"timeout_ms": 80}}) == 80.0
    assert client_timeout_ms({}, {"inputs": []}) is None
    assert (
        client_timeout_ms({"x-request-timeout-ms": "40"}, {"parameters": {"timeout_ms": 9}}) == 40
    )
    for bad in ("0", "-5", "soon", "inf"):
        with pytest.raises(ContractViolation, match="x-request-timeout-ms"):
            client_timeout_ms({"x-request-timeout-ms": bad})
    with pytest.raises(ContractViolation, match=r"parameters\.timeout_ms"):
        client_timeout_ms({}, {"parameters": {"timeout_ms": True}})
