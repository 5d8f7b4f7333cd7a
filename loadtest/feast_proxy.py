"""A fault proxy between the gateway and Feast: forwards everything, and on command
silently corrupts one feature's values.

    python -m loadtest.feast_proxy FEAST_URL [--port 8091]

Every request is forwarded unchanged (method, path, query, body, content type) to the
same path on ``FEAST_URL``, and Feast's status and body come back unchanged, except
while a corruption is on: then each ``200`` answer of ``POST /get-online-features`` has
the values of one feature multiplied by a factor. Feast's answer is column-major
(``metadata.feature_names`` and one ``results[i]`` per name, see
``gateway/features/feast_client.py``); the column whose name is the feature (``view__name``
with ``full_feature_names``, or the bare name) is rewritten, its statuses and timestamps
are kept, so nothing anywhere reports an error. Missing values (``null``) stay missing; an
integer times an integral factor stays an integer.

Control (not forwarded):

- ``GET /_proxy/health``: 200 once listening (the proxy's own health, not Feast's);
- ``GET /_proxy/corruption``: the corruption in force (``feature``, ``factor``, or nulls)
  and counters: answers forwarded, answers and values rewritten, upstream failures;
- ``POST /_proxy/corruption`` ``{"feature": "avg_amount_30d", "factor": 100}``: switch on
  (replacing any corruption in force); ``DELETE /_proxy/corruption``: heal.

The scenario runner starts it when a scenario has a ``corrupt`` fault and points the
gateway's ``feature_store.url`` at it (``loadtest/runner.py``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

CONTROL = "/_proxy"
LOOKUP = "/get-online-features"
# Request headers worth passing on; hop-by-hop ones and Host are aiohttp's business.
_FORWARDED = ("Content-Type", "Accept")
_SESSION = web.AppKey("session", aiohttp.ClientSession)


@dataclass
class Corruption:
    """What is multiplied now (``feature`` None: nothing), and what was done so far."""

    feature: str | None = None
    factor: float = 1.0
    forwarded: int = 0
    rewritten_answers: int = 0
    rewritten_values: int = 0
    upstream_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "factor": self.factor if self.feature else None,
            "forwarded": self.forwarded,
            "rewritten_answers": self.rewritten_answers,
            "rewritten_values": self.rewritten_values,
            "upstream_failures": self.upstream_failures,
        }


def _matches(column: object, feature: str) -> bool:
    """Feast's column name ``view__name`` (or ``name``) against ``name`` or ``view:name``."""
    if not isinstance(column, str):
        return False
    wanted = feature.replace(":", "__", 1)
    return column == wanted or (":" not in feature and column.split("__", 1)[-1] == feature)


def _times(value: object, factor: float) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # null, text, a list: not a number to corrupt
    product = value * factor
    if isinstance(value, int) and float(factor).is_integer():
        return int(product)
    return product if math.isfinite(product) else value


def corrupt_answer(body: bytes, feature: str, factor: float) -> tuple[bytes, int]:
    """Feast's ``get-online-features`` answer with ``feature``'s values times ``factor``,
    and how many values changed; an answer it cannot read is returned as it came."""
    try:
        doc = orjson.loads(body)
        names = doc["metadata"]["feature_names"]
        results = doc["results"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body, 0
    if not isinstance(names, list) or not isinstance(results, list):
        return body, 0
    changed = 0
    for name, column in zip(names, results, strict=False):
        if not _matches(name, feature) or not isinstance(column, dict):
            continue
        values = column.get("values")
        if not isinstance(values, list):
            continue
        column["values"] = [_times(v, factor) for v in values]
        changed += sum(1 for old, new in zip(values, column["values"], strict=True) if old != new)
    return (orjson.dumps(doc), changed) if changed else (body, 0)


def make_app(upstream: str, state: Corruption | None = None) -> web.Application:
    state = state or Corruption()

    async def start(app: web.Application) -> None:
        # Feast's 200 ms budget at the gateway is the only timeout that matters; this one
        # only keeps a wedged upstream from holding connections forever.
        app[_SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=30),
            auto_decompress=False,
        )

    async def stop(app: web.Application) -> None:
        await app[_SESSION].close()

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "upstream": upstream})

    async def read_corruption(_: web.Request) -> web.Response:
        return web.json_response(state.as_dict())

    async def set_corruption(request: web.Request) -> web.Response:
        try:
            doc = orjson.loads(await request.read())
            feature, factor = doc["feature"], float(doc["factor"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(
                text=f'expected {{"feature": str, "factor": number}}: {exc}'
            ) from exc
        if not isinstance(feature, str) or not feature or not math.isfinite(factor):
            raise web.HTTPBadRequest(text="feature must be a name and factor a finite number")
        state.feature, state.factor = feature, factor
        return web.json_response(state.as_dict())

    async def heal(_: web.Request) -> web.Response:
        state.feature, state.factor = None, 1.0
        return web.json_response(state.as_dict())

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: request.headers[k] for k in _FORWARDED if k in request.headers}
        try:
            async with request.app[_SESSION].request(
                request.method, upstream + request.rel_url.raw_path_qs, data=body, headers=headers
            ) as answer:
                payload = await answer.read()
                status = answer.status
                content_type = answer.headers.get("Content-Type", "application/json")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            state.upstream_failures += 1
            raise web.HTTPBadGateway(text=f"feast proxy: upstream failed: {exc!r}") from exc
        state.forwarded += 1
        feature = state.feature
        if feature is not None and status == 200 and request.path == LOOKUP:
            payload, changed = corrupt_answer(payload, feature, state.factor)
            if changed:
                state.rewritten_answers += 1
                state.rewritten_values += changed
        return web.Response(body=payload, status=status, headers={"Content-Type": content_type})

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get(f"{CONTROL}/health", health)
    app.router.add_get(f"{CONTROL}/corruption", read_corruption)
    app.router.add_post(f"{CONTROL}/corruption", set_corruption)
    app.router.add_delete(f"{CONTROL}/corruption", heal)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("upstream", help="Feast's URL, e.g. http://127.0.0.1:6566")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    app = make_app(args.upstream.rstrip("/"))
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
