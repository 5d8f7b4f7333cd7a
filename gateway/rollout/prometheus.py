"""A ``prometheus`` check's query, through the Prometheus HTTP API (``GET /api/v1/query``).

An instant query must answer one number: a scalar, or a vector of exactly one series.
Anything else fails the check: Prometheus unreachable or slow, a non-2xx answer, a
``status`` other than ``success``, an empty vector (the series does not exist, yet), more
than one series, NaN or an infinity. A check that cannot be evaluated never passes.

    >>> value_of({"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "3"]}})
    3.0
"""

from __future__ import annotations

import math
from typing import Any

import aiohttp
import orjson

from gateway.quality.canary_checks import CheckResult, judged
from gateway.settings.analysis import CheckSettings


class PrometheusError(Exception):
    """The query gave no usable number; the message says why."""


async def evaluate(session: aiohttp.ClientSession, check: CheckSettings) -> CheckResult:
    """Run ``check``'s query and judge the number against its bound."""
    assert check.url is not None and check.query is not None
    try:
        value = await query(session, check.url, check.query, check.timeout_seconds)
    except PrometheusError as exc:
        return _with_query(check, judged(check, None, str(exc)))
    return _with_query(check, judged(check, value))


def _with_query(check: CheckSettings, result: CheckResult) -> CheckResult:
    bound = {**result.bound, "query": check.query}
    return CheckResult(result.name, result.value, bound, result.ok, result.error)


async def query(
    session: aiohttp.ClientSession, url: str, promql: str, timeout_seconds: float
) -> float:
    """The number ``promql`` evaluates to now on the Prometheus at ``url``."""
    try:
        async with session.get(
            f"{url}/api/v1/query",
            params={"query": promql},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            body = await response.read()
            status = response.status
    except TimeoutError:
        raise PrometheusError(
            f"Prometheus at {url} did not answer within {timeout_seconds:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise PrometheusError(f"Prometheus at {url} is unreachable: {exc}") from exc
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PrometheusError(f"Prometheus at {url} answered HTTP {status}, not JSON") from None
    if not 200 <= status < 300:
        raise PrometheusError(
            f"Prometheus at {url} answered HTTP {status}: {_error_of(doc) or 'no error given'}"
        )
    return value_of(doc)


def _error_of(doc: Any) -> str | None:
    return str(doc.get("error")) if isinstance(doc, dict) and doc.get("error") else None


def value_of(doc: Any) -> float:
    """The one number of a ``/api/v1/query`` answer, or :class:`PrometheusError`."""
    if not isinstance(doc, dict) or doc.get("status") != "success":
        status = doc.get("status") if isinstance(doc, dict) else None
        raise PrometheusError(f"query status {status!r}: {_error_of(doc) or 'no error given'}")
    data = doc.get("data") or {}
    kind = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "scalar":
            number = float(result[1])
        elif kind == "vector":
            if not result:
                raise PrometheusError("the query returned no series (empty result)")
            if len(result) > 1:
                raise PrometheusError(
                    f"the query returned {len(result)} series; a check needs one number "
                    "(aggregate it, e.g. with sum())"
                )
            number = float(result[0]["value"][1])
        else:
            raise PrometheusError(f"the query returned a {kind}; a check needs a scalar or vector")
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise PrometheusError(f"the answer is not a query result: {exc}") from exc
    if not math.isfinite(number):
        raise PrometheusError(f"the query returned {number} (not a finite number)")
    return number
