"""A prometheus check's answer: one finite number, or a failed check."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from support import free_port

from gateway.rollout.prometheus import PrometheusError, evaluate, value_of
from gateway.settings.analysis import CheckSettings


def vector(*values: str) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1.0, v]} for v in values]}}  # fmt: skip


def test_one_series_or_a_scalar_is_the_value() -> None:
    assert value_of(vector("2.5")) == 2.5
    assert (
        value_of({"status": "success", "data": {"resultType": "scalar", "result": [1, "7"]}}) == 7
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (vector(), "no series (empty result)"),
        (vector("1", "2"), "returned 2 series"),
        (vector("NaN"), "not a finite number"),
        (vector("+Inf"), "not a finite number"),
        ({"status": "error", "error": "parse error"}, "query status 'error': parse error"),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "returned a matrix",
        ),
    ],
)
def test_anything_else_fails(doc: object, message: str) -> None:
    with pytest.raises(
        PrometheusError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")
    ):
        value_of(doc)


def test_an_unreachable_prometheus_fails_the_check() -> None:
    check = CheckSettings(
        name="prometheus", query="up", min=0, url=f"http://127.0.0.1:{free_port()}"
    )

    async def run() -> object:
        async with aiohttp.ClientSession() as session:
            return await evaluate(session, check)

    result = asyncio.run(run())
    assert not result.ok and result.value is None  # type: ignore[attr-defined]
    assert "unreachable" in (result.error or "")  # type: ignore[attr-defined]
    assert result.bound["query"] == "up"  # type: ignore[attr-defined]
