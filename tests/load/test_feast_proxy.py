"""The harness's fault proxy in front of Feast: a Feast-shaped upstream (aiohttp) behind the
real proxy app; lookups pass unchanged until a corruption is switched on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadtest.feast_proxy import Corruption, corrupt_answer, make_app

ANSWER = {
    "metadata": {"feature_names": ["customer_id", "customer_stats__avg_amount_30d",
                                   "customer_stats__txn_count_7d"]},
    "results": [
        {"values": ["c-1", "c-2", "c-3"], "statuses": ["PRESENT"] * 3},
        {"values": [10.5, None, 2.0], "statuses": ["PRESENT", "NOT_FOUND", "PRESENT"],
         "event_timestamps": ["2026-01-01T00:00:00Z"] * 3},
        {"values": [3, 4, 5], "statuses": ["PRESENT"] * 3},
    ],
}  # fmt: skip


def test_only_the_named_column_is_multiplied_and_nulls_stay_missing() -> None:
    body, changed = corrupt_answer(orjson.dumps(ANSWER), "customer_stats:avg_amount_30d", 100)
    doc = orjson.loads(body)
    assert changed == 2
    assert doc["results"][1]["values"] == [1050.0, None, 200.0]
    assert doc["results"][1]["statuses"] == ANSWER["results"][1]["statuses"]
    assert doc["results"][2]["values"] == [3, 4, 5]
    # A bare name matches too; an integer column times an integral factor stays integers.
    body, changed = corrupt_answer(orjson.dumps(ANSWER), "txn_count_7d", 10)
    assert changed == 3 and orjson.loads(body)["results"][2]["values"] == [30, 40, 50]


@pytest.mark.parametrize("body", [b"not json", b'{"metadata": {}}', b"[]"])
def test_an_answer_it_cannot_read_passes_unchanged(body: bytes) -> None:
    assert corrupt_answer(body, "avg_amount_30d", 100) == (body, 0)


@contextlib.asynccontextmanager
async def proxied() -> AsyncIterator[tuple[str, Corruption, list[bytes]]]:
    """The proxy's URL and state, in front of a Feast-shaped upstream recording bodies."""
    seen: list[bytes] = []

    async def lookup(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response(ANSWER)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    upstream_app = web.Application()
    upstream_app.router.add_post("/get-online-features", lookup)
    upstream_app.router.add_get("/health", health)
    upstream = TestServer(upstream_app)
    await upstream.start_server()
    state = Corruption()
    proxy = TestServer(make_app(str(upstream.make_url("")).rstrip("/"), state))
    await proxy.start_server()
    try:
        yield str(proxy.make_url("")).rstrip("/"), state, seen
    finally:
        await proxy.close()
        await upstream.close()


def test_forwards_until_corrupted_then_heals() -> None:
    asyncio.run(_forwards_until_corrupted_then_heals())


async def _forwards_until_corrupted_then_heals() -> None:
    async with proxied() as (url, state, seen):
        await _exercise(url, state, seen)


async def _exercise(url: str, state: Corruption, seen: list[bytes]) -> None:
    request = b'{"features": ["customer_stats:avg_amount_30d"]}'
    async with aiohttp.ClientSession() as session:

        async def avg() -> list[object]:
            async with session.post(f"{url}/get-online-features", data=request) as answer:
                assert answer.status == 200
                return list(orjson.loads(await answer.read())["results"][1]["values"])

        assert await avg() == [10.5, None, 2.0]
        async with session.post(f"{url}/_proxy/corruption",
                                json={"feature": "avg_amount_30d", "factor": 100}) as answer:  # fmt: skip
            assert answer.status == 200
        assert await avg() == [1050.0, None, 200.0]
        async with session.delete(f"{url}/_proxy/corruption") as answer:
            assert (await answer.json())["feature"] is None
        assert await avg() == [10.5, None, 2.0]
        async with session.get(f"{url}/health") as answer:
            assert answer.status == 200 and await answer.text() == "ok"
        async with session.post(f"{url}/_proxy/corruption", json={"factor": 2}) as answer:
            assert answer.status == 400  # no feature named: nothing switched on
    assert seen == [request] * 3  # the body went upstream unchanged
    assert (state.forwarded, state.rewritten_answers, state.rewritten_values) == (4, 1, 2)
    assert state.feature is None
