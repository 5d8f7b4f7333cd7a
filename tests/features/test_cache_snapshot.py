"""The last-known-good cache's snapshot file: round trip, bounds, bad files, and a gateway
restarted during a store outage serving from the snapshot of the one before it."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from contract_samples import v1_entity_doc
from feast_support import Feast
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, ModelServer, free_port

from gateway.features.cache import NEVER_READ, LastKnownGood
from gateway.features.snapshot import load, write
from gateway.settings import load_config

NOW = 1_800_000_000.0


def cache(max_entries: int = 100, horizon: float = 3600.0) -> LastKnownGood:
    return LastKnownGood(max_entries, horizon, lambda: NOW)


def test_a_snapshot_round_trips_values_and_their_event_times(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "snapshot.json"
    before = cache()
    before.put("c-1", "v:a", 4, NOW - 60)
    before.put("c-1", "v:b", "online", NOW - 30)
    before.put("c-2", "v:a", 1.5, NOW - 10)
    write(path, before.entries(), NOW)
    after = cache()
    loaded = load(path, after, NOW, 3600)
    assert (loaded.entries, loaded.skipped, loaded.written_at) == (3, 0, NOW)
    assert sorted(after.entries()) == sorted(before.entries())
    cached = after.get("c-1", "v:a")
    assert cached is not None and cached.event_time == NOW - 60  # the age is kept
    assert cached.read_at == NEVER_READ  # never served as a recent read (read-through)
    assert not list(tmp_path.glob("cache/.*.tmp"))


def test_an_older_answer_keeps_the_newer_value_but_counts_as_a_read() -> None:
    values = cache()
    values.put("c-1", "v:a", 4, NOW - 10, read_at=NOW - 5)
    values.put("c-1", "v:a", 3, NOW - 60, read_at=NOW)  # a lagging replica answered
    cached = values.get("c-1", "v:a")
    assert cached is not None and (cached.value, cached.event_time, cached.read_at) == (
        4,
        NOW - 10,
        NOW,
    )


def test_loading_keeps_the_newest_within_size_and_horizon(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    entries = [(f"c-{i}", "v:a", i, NOW - 100 * i) for i in range(10)]
    write(path, entries, NOW)
    small = cache(max_entries=3, horizon=550)  # c-6.. are older than the horizon
    loaded = load(path, small, NOW, 550)
    assert (loaded.entries, loaded.skipped) == (3, 7)
    assert sorted(e[0] for e in small.entries()) == ["c-0", "c-1", "c-2"]


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"version": 2, "entries": []}',
        b'{"version": 1, "entries": {}}',
        b'{"version": 1, "entries": [["c-1", "v:a", 1]]}',
        b'{"version": 1, "entries": [["c-1", "v:a", 1, "yesterday"]]}',
    ],
)
def test_a_bad_file_is_a_cold_start_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_bytes(content)
    empty = cache()
    assert load(path, empty, NOW, 3600).entries == 0
    assert len(empty) == 0
    assert "starting cold" in caplog.text


def test_a_missing_file_is_a_quiet_cold_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load(tmp_path / "none.json", cache(), NOW, 3600).written_at is None
    assert caplog.text == ""


def _config(folder: Path, upstream: str, store: str, snapshot: str | None) -> Path:
    path = folder / "gateway.yaml"
    cache_line = f"cache: {{snapshot: {{path: {snapshot}}}}}" if snapshot else ""
    path.write_text(f"""
feature_store:
  url: "{store}"
  {cache_line}
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "{upstream}", timeout_ms: 2000}}
""")
    return path


def _sources(gateway: GatewayThread, customers: list[str]) -> list[str]:
    sources = []
    for customer in customers:
        answer = httpx.post(
            f"{gateway.url}/v1/models/fraud:predict", json=v1_entity_doc([customer]), timeout=10
        )
        assert answer.status_code == 200, answer.text
        sources.append(answer.headers["x-gateway-feature-source"])
    return sources


@pytest.mark.e2e
def test_a_gateway_restarted_during_a_store_outage_serves_the_snapshot(
    feast: Feast, model_server: ModelServer, tmp_path: Path
) -> None:
    customers = [f"c-{i:04d}" for i in range(20)]
    warm = _config(tmp_path, model_server.url, feast.url, "snapshots/cache.json")
    with GatewayThread(load_config(warm), InMemorySpanExporter()) as gateway:
        assert _sources(gateway, customers) == ["live"] * 20
    written = orjson.loads((tmp_path / "snapshots" / "cache.json").read_bytes())
    assert len(written["entries"]) == 20 * 4  # four store features per customer

    dead_store = f"http://127.0.0.1:{free_port()}"
    restarted = _config(tmp_path, model_server.url, dead_store, "snapshots/cache.json")
    with GatewayThread(load_config(restarted), InMemorySpanExporter()) as gateway:
        assert _sources(gateway, customers) == ["cache"] * 20
        assert _sources(gateway, ["c-0999"]) == ["defaults"]  # never seen: no value to keep
    cold = _config(tmp_path, model_server.url, dead_store, None)
    with GatewayThread(load_config(cold), InMemorySpanExporter()) as gateway:
        assert _sources(gateway, customers[:3]) == ["defaults"] * 3
