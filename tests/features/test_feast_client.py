"""The Feast client's parsing and error translation, without a server where none is needed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from support import free_port

from gateway.errors import FeatureStoreBadResponse, FeatureStoreTimeout, FeatureStoreUnavailable
from gateway.features.feast_client import FeastClient, error_message, full_name

REFS = ["customer_stats:avg_amount_30d", "customer_stats:txn_count_7d"]
ANSWER = {
    "metadata": {"feature_names": ["customer_id", "customer_stats__txn_count_7d", "customer_stats__avg_amount_30d"]},
    "results": [
        {"values": ["c-1", "c-2", "c-3"], "statuses": ["PRESENT"] * 3, "event_timestamps": ["1970-01-01T00:00:00Z"] * 3},
        {"values": [2, None, None], "statuses": ["PRESENT", "NOT_FOUND", "NULL_VALUE"],
         "event_timestamps": ["2026-11-25T22:30:59Z", "1970-01-01T00:00:00Z", "2026-11-25T22:30:59Z"]},
        {"values": [20.64, None, 3.5], "statuses": ["PRESENT", "NOT_FOUND", "PRESENT"],
         "event_timestamps": ["2026-11-25T22:30:59Z", "1970-01-01T00:00:00Z", "2026-11-25T22:31:00Z"]},
    ],
}  # fmt: skip
STAMP = 1795645859.0  # 2026-11-25T22:30:59Z


@contextlib.asynccontextmanager
async def client_of(
    lookup: Callable[[web.Request], Awaitable[web.Response]], timeout_s: float, **options: Any
) -> AsyncIterator[FeastClient]:
    """A client of a real HTTP server that answers ``/get-online-features`` with ``lookup``."""
    from local_http import serving

    app = web.Application()
    app.router.add_post("/get-online-features", lookup)
    async with serving(app) as port, aiohttp.ClientSession() as session:
        yield FeastClient(session, f"http://127.0.0.1:{port}", timeout_s, **options)


def parse(answer: Any, count: int = 3) -> Any:
    client = FeastClient(None, "http://feast", 1.0)  # type: ignore[arg-type]
    return client._parse(orjson.dumps(answer), REFS, count)


def test_columns_are_mapped_by_name_not_by_position() -> None:
    parsed = parse(ANSWER)
    avg, count = parsed[REFS[0]], parsed[REFS[1]]
    assert [v.value for v in avg] == [20.64, None, 3.5]
    assert [v.value for v in count] == [2, None, None]
    assert avg[0].found and avg[0].event_time == STAMP
    assert not count[1].found and count[1].status == "NOT_FOUND"
    assert not count[2].found and count[2].status == "NULL_VALUE"
    assert avg[2].event_time == STAMP + 1
    assert full_name(REFS[0]) == "customer_stats__avg_amount_30d"


@pytest.mark.parametrize(
    ("answer", "count", "message"),
    [
        ({"metadata": {"feature_names": ["customer_id"]}, "results": [ANSWER["results"][0]]}, 3, "KeyError"),
        (ANSWER, 2, "expected 2 values per feature"),
        ({"results": []}, 3, "KeyError"),
        ([1, 2], 3, "TypeError"),
    ],
)  # fmt: skip
def test_unreadable_answers_are_bad_responses(answer: Any, count: int, message: str) -> None:
    with pytest.raises(FeatureStoreBadResponse, match=message):
        parse(answer, count)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\"'Feature nope not found in projection customer_stats'\"", "Feature nope not found in projection customer_stats"),
        (b'{"detail": [{"msg": "Field required"}]}', "[{'msg': 'Field required'}]"),
        (b"Internal Server Error", "Internal Server Error"),
        (b"", "<empty body>"),
    ],
)  # fmt: skip
def test_feast_error_bodies_are_decoded(payload: bytes, message: str) -> None:
    assert error_message(payload) == message


def test_a_refused_connection_is_unavailable() -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            client = FeastClient(session, f"http://127.0.0.1:{free_port()}", 1.0)
            with pytest.raises(
                FeatureStoreUnavailable, match=r"feature store 'http://127\.0\.0\.1:"
            ):
                await client.online_features(REFS, "customer_id", ["c-1"])

    asyncio.run(run())


def test_a_shorter_request_budget_caps_the_store_timeout() -> None:
    """A store slower than the request's remaining budget times out at the budget."""
    import asyncio
    import time

    from aiohttp import ClientSession, web
    from local_http import serving

    from gateway.errors import FeatureStoreTimeout
    from gateway.features.feast_client import FeastClient

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    async def scenario() -> float:
        app = web.Application()
        app.router.add_post("/get-online-features", slow)
        async with serving(app) as port, ClientSession() as session:
            client = FeastClient(session, f"http://127.0.0.1:{port}", timeout_seconds=5.0)
            started = time.perf_counter()
            try:
                await client.online_features(["v:f"], "customer_id", ["c-1"], 0.1)
            except FeatureStoreTimeout as exc:
                assert "0.1 s" in exc.message
                return time.perf_counter() - started
            raise AssertionError("no timeout")

    assert asyncio.run(scenario()) < 0.8


async def _drop_first_then_answer(handled: list[str]) -> web.Application:
    """A store whose first lookup's connection is closed with no answer (a worker that
    exits), then answers every lookup."""

    async def lookup(request: web.Request) -> web.StreamResponse:
        handled.append("dropped" if not handled else "answered")
        if handled[-1] == "dropped":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post("/get-online-features", lookup)
    return app


@pytest.mark.parametrize("retry", [True, False])
def test_a_dropped_connection_is_tried_once_more_within_the_budget(retry: bool) -> None:
    from local_http import serving

    async def scenario() -> tuple[object, list[str], int]:
        handled: list[str] = []
        app = await _drop_first_then_answer(handled)
        async with serving(app) as port, aiohttp.ClientSession() as session:
            client = FeastClient(session, f"http://127.0.0.1:{port}", 1.0, retry_dropped=retry)
            try:
                got: object = await client.online_features(
                    REFS, "customer_id", ["c-1", "c-2", "c-3"]
                )
            except FeatureStoreUnavailable as exc:
                got = exc
        return got, handled, client.retries

    got, handled, retries = asyncio.run(scenario())
    if retry:
        assert isinstance(got, dict) and [v.value for v in got[REFS[0]]] == [20.64, None, 3.5]
        assert (handled, retries) == (["dropped", "answered"], 1)
    else:
        assert isinstance(got, FeatureStoreUnavailable) and "ServerDisconnected" in got.message
        assert (handled, retries) == (["dropped"], 0)


def test_a_slow_lookup_is_hedged_and_the_first_answer_wins() -> None:
    """The first lookup hangs (a worker starting up); the hedge, sent after 50 ms, answers."""
    calls: list[float] = []

    async def lookup(request: web.Request) -> web.Response:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            await asyncio.sleep(2.0)
        return web.json_response(ANSWER)

    async def scenario(hedge_after: float | None) -> tuple[float, int]:
        calls.clear()
        async with client_of(lookup, 1.0, hedge_after_seconds=hedge_after) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with contextlib.suppress(FeatureStoreTimeout):
                await client.online_features(REFS, "customer_id", ["c-1", "c-2", "c-3"])
            return loop.time() - started, client.hedges

    took, hedges = asyncio.run(scenario(0.05))
    assert hedges == 1 and len(calls) == 2
    assert 0.05 <= took < 0.5
    took, hedges = asyncio.run(scenario(None))  # no hedging: the store's 1 s timeout
    assert hedges == 0 and len(calls) == 1 and took >= 1.0


def test_hedges_stay_within_their_budget_when_every_lookup_is_slow() -> None:
    """A store slow for everyone (its machine short of CPU) gets at most the budget's share
    of second copies, not one per lookup; every lookup still gets its answer."""
    from gateway.resilience.retry_budget import RetryBudget

    calls: list[float] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.04)
        return web.json_response(ANSWER)

    async def scenario(budget: RetryBudget | None) -> tuple[int, int]:
        calls.clear()
        async with client_of(slow, 1.0, hedge_after_seconds=0.005, hedge_budget=budget) as client:
            for _ in range(20):
                got = await client.online_features(REFS, "customer_id", ["c-1", "c-2", "c-3"])
                assert [v.value for v in got[REFS[0]]] == [20.64, None, 3.5]
            await asyncio.sleep(0.1)  # a cancelled hedge may still reach the server
            return client.hedges, len(calls)

    # Each lookup earns a quarter of a hedge: past the reserve of one, every fourth is hedged.
    hedges, calls_made = asyncio.run(scenario(RetryBudget(percent=25, min_retries=1)))
    assert 20 * 0.25 - 1 <= hedges <= 20 * 0.25 + 1 and calls_made == 20 + hedges
    assert asyncio.run(scenario(None)) == (20, 40)  # unbounded: every slow lookup hedged


def test_a_caller_that_gives_up_leaves_no_attempt_behind_and_no_error_unseen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The request's deadline cancels a hedged lookup: neither POST keeps running, and a
    lost attempt's failure is never logged as an exception nobody retrieved."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.json_response(ANSWER)

    async def scenario() -> int:
        async with client_of(slow, 0.2, hedge_after_seconds=0.02) as client:
            for patience in (0.01, 0.1):  # gives up before the hedge, and after it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        client.online_features(REFS, "customer_id", ["c-1", "c-2", "c-3"]), patience
                    )
            with contextlib.suppress(FeatureStoreTimeout):  # both attempts time out
                await client.online_features(REFS, "customer_id", ["c-1", "c-2", "c-3"])
            await asyncio.sleep(0.3)  # an orphaned attempt would end (and fail) by now
            current = asyncio.current_task()
            return sum(1 for t in asyncio.all_tasks() if t is not current and "_post" in repr(t))

    import gc

    with caplog.at_level("ERROR", logger="asyncio"):
        left = asyncio.run(scenario())
        gc.collect()  # asyncio logs unretrieved errors when the task is collected
    assert left == 0
    assert "never retrieved" not in caplog.text
