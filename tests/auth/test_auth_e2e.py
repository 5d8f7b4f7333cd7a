"""API keys end to end: a real model server, the gateway on uvicorn, open-loop load per key.

The figure this proves (docs/auth.md): a key limited to 50 requests/s (burst 50) that sends
200 requests/s for 5 s gets about 50 + 50 x 5 answers 200 and the rest 429 with
``Retry-After``; a second key sending at the same time is unaffected; requests without a
valid key get 401 and those for a model outside their key's list 403; the model server
sees exactly the requests answered 200; metrics and spans name keys, never show them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, ModelServer, model_server_running

from gateway.settings import load_config

pytestmark = pytest.mark.e2e

LIMITED_KEY = "limited-7f3a9c"
OTHER_KEY = "other-1b2c3d"
RESTRICTED_KEY = "restricted-99aa"
RATE, BURST, SECONDS = 50, 50, 5.0
CARD = json.loads((MODELS / "fraud-v1" / "model-card.json").read_text())
ROW = {"avg_amount_30d": 85.0, "txn_count_7d": 6, "chargeback_rate_90d": 0.01,
       "account_age_days": 900, "amount": 120.5, "merchant_category": "grocery",
       "hour": 14, "is_foreign": False}  # fmt: skip


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def v2_body() -> bytes:
    inputs = []
    for spec in CARD["inputs"]:
        value = ROW[spec["name"]]
        value = float(value) if spec["datatype"].startswith("FP") else value
        inputs.append({"name": spec["name"], "datatype": spec["datatype"], "shape": [1, 1],
                       "data": [value]})  # fmt: skip
    return json.dumps({"inputs": inputs}).encode()


def write_config(folder: Path, upstream: str) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
telemetry: {{sampling_ratio: 1.0}}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", timeout_ms: 2000}}
  fraud-b:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-b, url: "{upstream}", model_name: fraud, timeout_ms: 2000}}
auth:
  api_keys:
    - {{name: limited, sha256: {sha(LIMITED_KEY)}, rate_per_second: {RATE}, burst: {BURST}, models: [fraud]}}
    - {{name: other, sha256: {sha(OTHER_KEY)}, rate_per_second: {RATE}, burst: {BURST}}}
    - {{name: restricted, sha256: {sha(RESTRICTED_KEY)}, models: [fraud-b]}}
"""
    )
    return path


@dataclass
class Stream:
    """One client's open-loop stream: ``rate`` requests/s for ``SECONDS`` to ``model``."""

    headers: dict[str, str]
    rate: float
    model: str = "fraud"
    statuses: list[int] = field(default_factory=list)
    retry_after: list[str | None] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)

    def count(self, status: int) -> int:
        return self.statuses.count(status)


async def send(session: aiohttp.ClientSession, url: str, stream: Stream, body: bytes) -> None:
    headers = {"content-type": "application/json", **stream.headers}

    async def one() -> None:
        stream.sent_at.append(time.monotonic())
        async with session.post(f"{url}/v2/models/{stream.model}/infer", data=body, headers=headers) as answer:  # fmt: skip
            await answer.read()
            stream.statuses.append(answer.status)
            if answer.status == 429:
                stream.retry_after.append(answer.headers.get("retry-after"))

    start = time.monotonic()
    tasks = []
    for i in range(int(stream.rate * SECONDS)):
        delay = start + i / stream.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)


async def load(url: str, streams: list[Stream]) -> None:
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(send(session, url, s, v2_body()) for s in streams))


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with model_server_running() as server:
        yield server


def infer_requests(server: ModelServer) -> int:
    count: int = httpx.get(f"{server.url}/_debug/stats").json()["infer_requests"]
    return count


def test_a_key_over_its_rate_gets_429s_and_nobody_else_notices(
    model_server: ModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter = InMemorySpanExporter()
    config = load_config(write_config(tmp_path, model_server.url))
    limited = Stream({"authorization": f"Bearer {LIMITED_KEY}"}, rate=200)
    other = Stream({"x-api-key": OTHER_KEY}, rate=20)
    anonymous = Stream({}, rate=20)
    wrong_key = Stream({"x-api-key": "limited-7f3a9d"}, rate=10)
    restricted = Stream({"x-api-key": RESTRICTED_KEY}, rate=10)  # fraud only: 403
    before = infer_requests(model_server)
    with GatewayThread(config, exporter) as gateway:
        started = time.monotonic()
        asyncio.run(load(gateway.url, [limited, other, anonymous, wrong_key, restricted]))
        took = time.monotonic() - started
        metrics = httpx.get(f"{gateway.url}/metrics").text
    upstream_saw = infer_requests(model_server) - before

    span = limited.sent_at[-1] - limited.sent_at[0]
    expected = BURST + RATE * span
    ok, refused = limited.count(200), limited.count(429)
    with capsys.disabled():
        print(
            f"\n[auth e2e] limited key: {len(limited.statuses)} sent over {span:.2f} s at "
            f"{len(limited.statuses) / span:.0f}/s -> {ok} x 200 (expected ~{expected:.0f} = "
            f"{BURST} + {RATE} x {span:.2f}), {refused} x 429; other key: "
            f"{other.count(200)}/{len(other.statuses)} x 200; 401: "
            f"{anonymous.count(401) + wrong_key.count(401)}; 403: {restricted.count(403)}; "
            f"upstream saw {upstream_saw}; load took {took:.1f} s"
        )
    assert ok + refused == len(limited.statuses) == 1000
    assert abs(ok - expected) <= 15, (ok, expected)
    assert set(limited.retry_after) == {"1"}  # integer seconds, at least 1, on every 429
    assert other.statuses == [200] * 100  # the other key is unaffected
    assert anonymous.statuses == [401] * 100
    assert wrong_key.statuses == [401] * 50
    assert restricted.statuses == [403] * 50
    assert upstream_saw == ok + other.count(200)  # no refused request reached the model

    def sample(key: str, decision: str) -> float:
        prefix = f'gateway_auth_decisions_total{{decision="{decision}",key="{key}"}} '
        line = next((ln for ln in metrics.splitlines() if ln.startswith(prefix)), prefix + "0")
        return float(line.removeprefix(prefix))

    assert sample("limited", "allowed") == ok
    assert sample("limited", "rate_limited") == refused
    assert sample("other", "allowed") == 100
    assert sample("other", "rate_limited") == 0
    assert sample("<none>", "unauthenticated") == 150
    assert sample("restricted", "forbidden") == 50
    spans = exporter.get_finished_spans()
    named = [dict(s.attributes) for s in spans if s.attributes and "gateway.auth.key_name" in s.attributes]  # fmt: skip
    outcomes = [(a["gateway.auth.key_name"], a["gateway.outcome"]) for a in named]
    assert outcomes.count(("limited", "ok")) == ok
    assert outcomes.count(("limited", "rate_limited")) == refused
    assert outcomes.count(("other", "ok")) == 100
    assert outcomes.count(("restricted", "forbidden")) == 50
    for secret in (LIMITED_KEY, OTHER_KEY, RESTRICTED_KEY, sha(LIMITED_KEY)):
        assert secret not in metrics
        assert not any(secret in str(dict(s.attributes or {})) for s in spans)
