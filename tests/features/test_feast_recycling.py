"""Feast as ``feast serve`` runs it by default (a new worker every ~1,000 requests) under
steady load: the gateway rides through each recycling with live features and a closed
store breaker, on its default feature-store settings."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import httpx
import psutil
import pytest
from contract_samples import v1_entity_doc
from feast_support import Feast, serve_feast, stagger, warm_up
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, ModelServer, free_port

from gateway.settings import load_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENTS = 16
RECYCLES = 2  # worker replacements to ride through before the test judges
WORKERS = 2


def metric(gateway: GatewayThread, line_start: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def summary(events: list[str]) -> str:
    """The timeline in one line: worker changes, and degraded answers counted per second."""
    out: list[str] = []
    for event in events:
        at, what = event.split(" ", 1)
        key = f"{int(float(at))}s {what}" if not what.startswith("workers") else event
        if out and out[-1].split(" x")[0] == key:
            count = int(out[-1].rsplit(" x", 1)[1]) if " x" in out[-1] else 1
            out[-1] = f"{key} x{count + 1}"
        else:
            out.append(key)
    return "; ".join(out)


def workers(feast: Feast) -> set[int]:
    """The pids of gunicorn's workers now (the master's children)."""
    try:
        return {child.pid for child in psutil.Process(feast.pid).children()}
    except psutil.NoSuchProcess:
        return set()


async def drive(url: str, feast: Feast, seconds: float) -> tuple[list[str], set[int], list[str]]:
    """v1 predicts for random customers from ``CLIENTS`` loops until Feast has replaced its
    worker ``RECYCLES`` times (and 2 s more) or ``seconds`` pass; each answer's feature
    source (``error <status>`` for a non-200), every worker pid seen, and a timeline of
    worker changes and degraded answers for the failure message."""
    sources: list[str] = []
    seen = workers(feast)
    stop = asyncio.Event()
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    start = loop.time()
    events: list[str] = []

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            body = v1_entity_doc([f"c-{rng.randrange(10_000):04d}"])
            async with session.post(f"{url}/v1/models/fraud:predict", json=body) as answer:
                await answer.read()
                ok = answer.status == 200
                source = (
                    answer.headers["x-gateway-feature-source"] if ok else f"error {answer.status}"
                )
                sources.append(source)
                if source != "live":
                    events.append(f"{loop.time() - start:.2f} {source}")

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        now = workers(feast)
        while loop.time() < deadline and len(seen) < RECYCLES + WORKERS:
            latest = workers(feast)
            if latest != now:
                events.append(f"{loop.time() - start:.2f} workers {sorted(latest)}")
                now = latest
            seen.update(latest)
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # the last recycling's aftermath counts too
        stop.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(watch(), *(client(session) for _ in range(CLIENTS)))
    return sources, seen, events


def test_worker_recycling_costs_no_live_answers_and_never_opens_the_breaker(
    feast_repo: Path, model_server: ModelServer, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"""
feature_store:
  url: "{{store}}"
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{model_server.url}", timeout_ms: 2000}}
""")
    with serve_feast(feast_repo, free_port(), max_requests=None, workers=2) as feast:
        config.write_text(config.read_text().replace("{store}", feast.url))
        warm_up(feast)
        stagger(feast, 500)
        with GatewayThread(load_config(config), InMemorySpanExporter()) as gateway:
            sources, seen, events = asyncio.run(drive(gateway.url, feast, seconds=120))
            opened = metric(
                gateway, 'gateway_feature_store_breaker_transitions_total{state="open"}'
            )
            calls = metric(gateway, 'gateway_feature_store_requests_total{outcome="ok"}')
            outcomes = {
                line.split("outcome=")[1].split("}")[0]: line.rsplit(" ", 1)[1]
                for line in httpx.get(f"{gateway.url}/metrics").text.splitlines()
                if line.startswith("gateway_feature_store_requests_total{")
            }
    recycled = len(seen) - WORKERS
    assert recycled >= RECYCLES, f"Feast replaced a worker {recycled} times only"
    live = sources.count("live") / len(sources)
    failures = {s: sources.count(s) for s in set(sources) if s != "live"}
    assert live >= 0.99, (
        f"{live:.4f} live of {len(sources)}",
        failures,
        outcomes,
        opened,
        summary(events),
    )
    assert opened == 0
    assert not any(s.startswith("error") for s in sources), failures
    assert 0 < calls <= len(sources)  # coalesced: never more store calls than requests
