"""Breaker states polled from /admin/status: parsing, bands, the report's panel and JSON key."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ladder_support import FALLBACK_SHA256, TOKEN, ladder_config
from local_http import serving
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, free_port

from gateway.contracts.card import load_card
from gateway.contracts.samples import sample_infer_request
from gateway.settings import load_config
from loadtest.breaker_timeline import (
    AfterFault,
    Band,
    BreakerSample,
    after_faults,
    bands,
    changes,
    poll_breakers,
    samples_from_status,
)
from loadtest.generator import Record
from loadtest.report import STATE_COLORS, breaker_markdown, breaker_panel, write_report
from loadtest.scenario import Fault, Scenario

GUARD = {"upstream": "fraud-v1", "breaker": {"state": "open", "trip_reason": "3 consecutive"},
         "bulkhead": {}, "retry_budget": {}, "last_failure": None}  # fmt: skip


def status_doc(state: str = "closed") -> dict[str, Any]:
    """An /admin/status document shaped like gateway/api/admin.py's (one model, no canary)."""
    guard = GUARD | {"breaker": {"state": state, "trip_reason": None}}
    return {"config": {"path": "x", "reload": None},
            "models": {"fraud": {"serving_rungs": ["primary"], "primary": guard, "canary": None}}}  # fmt: skip


def sample(t: float, state: str, breaker: str = "fraud/fraud-v1") -> BreakerSample:
    return BreakerSample.from_dict({"t": t, "breaker": breaker, "state": state})


def test_a_status_document_gives_one_sample_per_breaker() -> None:
    replicas = GUARD | {"upstream": "fraud-v2", "endpoints": [
        {"name": "fraud-v2", "url": "http://a", "breaker": {"state": "closed"}},
        {"name": "fraud-v2#2", "url": "http://b", "breaker": {"state": "half_open"}}]}  # fmt: skip
    doc = {
        "models": {
            "fraud": {"primary": GUARD, "canary": replicas},
            "spam": {"primary": None, "canary": None},  # a model without a guard
        },
        "feature_store": {"breaker": {"state": "sideways"}},
    }
    assert samples_from_status(doc, 1.5) == [
        BreakerSample(1.5, "fraud/fraud-v1", "open"),
        BreakerSample(1.5, "fraud/fraud-v2", "closed"),
        BreakerSample(1.5, "fraud/fraud-v2#2", "half_open"),
        BreakerSample(1.5, "feature_store", "unknown"),  # a state it does not know
    ]


@pytest.mark.parametrize("doc", [None, [], "x", {"models": []}, {"models": {"fraud": 3}}])
def test_an_odd_document_gives_no_samples(doc: object) -> None:
    assert samples_from_status(doc, 0.0) == []


def test_bands_merge_runs_of_one_state_per_breaker() -> None:
    samples = [sample(0.0, "closed"), sample(0.1, "closed"), sample(0.2, "open"),
               sample(0.3, "unknown"), sample(0.4, "open"), sample(0.5, "closed"),
               sample(0.0, "closed", "feature_store"), sample(0.5, "closed", "feature_store")]  # fmt: skip
    assert bands(samples) == [
        Band("fraud/fraud-v1", 0.0, 0.2, "closed"),
        Band("fraud/fraud-v1", 0.2, 0.3, "open"),
        Band("fraud/fraud-v1", 0.3, 0.4, "unknown"),
        Band("fraud/fraud-v1", 0.4, 0.5, "open"),
        Band("fraud/fraud-v1", 0.5, 0.5, "closed"),
        Band("feature_store", 0.0, 0.5, "closed"),
    ]
    assert bands([]) == []


def test_openings_and_closings_after_each_fault() -> None:
    samples = [sample(t / 10, "closed") for t in range(40)]
    samples += [sample(4.05, "open"), sample(4.5, "unknown"), sample(5.0, "half_open"),
                sample(5.01, "open"), sample(8.6, "closed"), sample(9.0, "closed")]  # fmt: skip
    samples += [sample(t, "closed", "feature_store") for t in (0.0, 5.0, 9.0)]
    # Unknown samples do not count: open, unknown, open is one opening.
    assert changes(samples)["fraud/fraud-v1"] == [
        (0.0, "closed"), (4.05, "open"), (5.0, "half_open"), (5.01, "open"), (8.6, "closed")
    ]  # fmt: skip
    assert after_faults(samples, [4.0, 8.0]) == [  # feature_store stayed closed: no rows
        AfterFault("fraud/fraud-v1", 4.0, opened=4.05, closed=8.6),
        AfterFault("fraud/fraud-v1", 8.0, opened=None, closed=8.6),
    ]


def test_the_poller_records_states_and_failed_polls_as_unknown() -> None:
    answers: list[web.Response] = [
        web.json_response(status_doc("closed")),
        web.json_response({"error": "restarting"}, status=503),
        web.Response(body=b"not json"),
        web.json_response(status_doc("open")),
    ]
    seen_tokens: list[str] = []
    all_given = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        seen_tokens.append(request.headers.get("authorization", ""))
        if len(answers) <= 1:
            all_given.set()
        return answers.pop(0) if answers else web.json_response(status_doc("open"))

    async def scenario() -> tuple[list[BreakerSample], float]:
        app = web.Application()
        app.router.add_get("/admin/status", handler)
        async with serving(app) as port:
            stop = asyncio.Event()
            start = time.perf_counter()
            task = asyncio.create_task(
                poll_breakers(
                    f"http://127.0.0.1:{port}", "s3cret", stop, start=start, interval=0.02
                )
            )
            await asyncio.wait_for(all_given.wait(), 5)
            await asyncio.sleep(0.05)
            stop.set()
            stopped_at = time.perf_counter()
            samples = await task
            return samples, time.perf_counter() - stopped_at

    samples, stop_took = asyncio.run(scenario())
    assert set(seen_tokens) == {"Bearer s3cret"}
    assert [s.state for s in samples[:4]] == ["closed", "unknown", "unknown", "open"]
    assert {s.breaker for s in samples} == {"fraud/fraud-v1"}
    assert all(b.t > a.t for a, b in itertools.pairwise(samples))
    assert stop_took < 0.5


def test_a_gateway_that_never_answered_gives_no_samples() -> None:
    async def scenario() -> list[BreakerSample]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            poll_breakers(f"http://127.0.0.1:{free_port()}", "t", stop, start=0.0, interval=0.01)
        )
        await asyncio.sleep(0.1)
        stop.set()
        return await task

    assert asyncio.run(scenario()) == []


def test_the_poller_reads_the_real_admin_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway in-process, its primary unreachable: the breaker opens after 2 failures."""
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    extra = ("    breaker: {consecutive_failures: 2, reset_timeout_seconds: 60}\n"
             f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {FALLBACK_SHA256}}}\n")  # fmt: skip
    config = load_config(ladder_config(tmp_path, f"http://127.0.0.1:{free_port()}", extra))
    body = sample_infer_request(load_card(MODELS / "fraud-v1"), "poll")

    async def scenario(url: str) -> list[BreakerSample]:
        stop = asyncio.Event()
        task = asyncio.create_task(poll_breakers(url, TOKEN, stop, start=0.0, interval=0.01))
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.3)  # a few polls of the closed breaker
            for _ in range(2):
                async with session.post(f"{url}/v2/models/fraud/infer", json=body) as response:
                    assert response.headers["x-gateway-served-by"] == "fallback:onnx"
            await asyncio.sleep(0.3)
        stop.set()
        return await task

    with GatewayThread(config, InMemorySpanExporter()) as gateway:
        samples = asyncio.run(scenario(gateway.url))
    assert {s.breaker for s in samples} == {"fraud/fraud-v1"}
    assert [state for _, state in changes(samples)["fraud/fraud-v1"]] == ["closed", "open"]


SCENARIO = Scenario.model_validate({
    "name": "t", "stack": {"gateway": "models: {}"},
    "load": {"phases": [{"name": "up", "seconds": 2, "rate": 2}, {"name": "down", "seconds": 2, "rate": 2}]},
})  # fmt: skip
TIMELINE = [sample(t / 10, "open" if 20 < t < 32 else "closed") for t in range(40)] + [
    sample(t / 10, "closed", "fraud/fraud-v2") for t in range(40)
]


def test_the_report_writes_the_breaker_timeline_and_its_summary(tmp_path: Path) -> None:
    records = [
        Record(i / 2, 0.01, 200, i % 2, "primary", "fraud-v1", "none", 0.5) for i in range(8)
    ]
    faults = [(2.0, Fault(at=2.0, action="kill", target="fraud-v1"))]
    write_report(SCENARIO, records, faults, [], tmp_path, TIMELINE)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["breaker_timeline"][21] == {"t": 2.1, "breaker": "fraud/fraud-v1", "state": "open"}
    assert len(doc["breaker_timeline"]) == 80
    text = (tmp_path / "report.md").read_text()
    assert (
        "| `fraud/fraud-v1` | kill fraud-v1 at 2.0 s | 2.10 s (+0.10 s) | 3.20 s (+1.20 s) |"
        in text
    )
    assert "Stayed closed: `fraud/fraud-v2`." in text
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


def test_a_report_without_samples_has_no_breaker_section() -> None:
    doc: dict[str, Any] = {"faults": [], "breaker_timeline": []}
    assert breaker_markdown(doc) == []
    assert breaker_markdown({"faults": []}) == []  # a report.json from before the key


def test_the_panel_has_one_band_row_per_breaker_colored_by_state() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_hex, to_rgba_array

    fig, axis = plt.subplots()
    try:
        breaker_panel(axis, TIMELINE)
        rows = [c for c in axis.collections if isinstance(c, PolyCollection)]
        assert axis.get_title(loc="left") == "breaker states"
        assert [t.get_text() for t in axis.get_yticklabels()] == [
            "fraud/fraud-v1",
            "fraud/fraud-v2",
        ]
        # fraud-v1: closed, open, closed; fraud-v2: closed all along.
        assert len(rows) == 4
        drawn = [to_hex(to_rgba_array(r.get_facecolor())[0]) for r in rows]
        closed, opened = to_hex(STATE_COLORS["closed"]), to_hex(STATE_COLORS["open"])
        assert drawn == [closed, opened, closed, closed] and closed != opened
        empty_fig, empty = plt.subplots()
        breaker_panel(empty, [])
        assert [t.get_text() for t in empty.texts] == ["no breaker samples"]
        plt.close(empty_fig)
    finally:
        plt.close(fig)
