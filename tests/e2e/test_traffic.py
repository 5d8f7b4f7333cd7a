"""Canary routing, shadow traffic with paired comparison, and live reload, end to end.

Real model-server processes (fraud v1 as primary, v2 as canary or shadow) behind a real
uvicorn gateway; the config file is rewritten under load.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import MODELS, GatewayThread, free_port, model_server_command, running

from gateway.routing.sticky import CanarySplit
from gateway.settings import load_config
from loadtest.payloads import load_rows

pytestmark = pytest.mark.e2e
TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ROWS = load_rows(limit=400)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """fraud-v1, fraud-v2, and a fraud-v2 that answers after 2 s."""
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for name, model, extra in (("v1", "fraud-v1", ()), ("v2", "fraud-v2", ()),
                                   ("slow", "fraud-v2", ("--fault-mode", "slow", "--fault-delay-ms", "2000")),
                                   ("broken", "fraud-v2", ("--fault-mode", "error"))):  # fmt: skip
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            stack.enter_context(running(model_server_command(MODELS / model, port, *extra),
                                        f"{urls[name]}/v2/health/ready"))  # fmt: skip
        yield urls


def config_text(urls: dict[str, str], weight: float = 0, shadow: str | None = None,
                sample: float = 0, override: bool = False, queue: int = 256) -> str:  # fmt: skip
    shadows = (f"    shadows: [{{name: fraud-shadow, url: '{urls[shadow]}', sample_percent: {sample}, "
               f"timeout_ms: 5000}}]\n") if shadow else ""  # fmt: skip
    return (
        f"server: {{reload: {{interval_ms: 100}}, shadow_queue: {{max_queue: {queue}, concurrency: 2}}}}\n"
        "models:\n  fraud:\n"
        f"    card: {MODELS / 'fraud-v1'}\n"
        f"    primary: {{name: fraud-v1, url: '{urls['v1']}', timeout_ms: 2000}}\n"
        f"    canary: {{name: fraud-v2, url: '{urls['v2']}', weight: {weight}, timeout_ms: 2000}}\n"
        f"    routing: {{allow_variant_override: {str(override).lower()}}}\n" + shadows
    )


def save_by_rename(path: Path, text: str) -> None:
    temp = path.with_name(".gateway.yaml.tmp")
    temp.write_text(text)
    os.replace(temp, path)


@pytest.fixture
def gateway_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    opened: list[GatewayThread] = []

    def start(text: str) -> tuple[GatewayThread, Path]:
        path = tmp_path / "gateway.yaml"
        path.write_text(text)
        gateway = GatewayThread(load_config(path), InMemorySpanExporter()).__enter__()
        opened.append(gateway)
        return gateway, path

    yield start
    for gateway in opened:
        gateway.__exit__()


def instance(row: dict[str, Any]) -> dict[str, Any]:
    return {**row["instance"], **row["features"]}


def predict(client: httpx.Client, url: str, row: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post(
        f"{url}/v1/models/fraud:predict", json={"instances": [instance(row)]}, headers=headers
    )


def test_canary_assignment_is_sticky_across_reloads_and_matches_the_weight(
    servers: dict[str, str], gateway_for: Any
) -> None:
    gateway, _ = gateway_for(config_text(servers, weight=30))
    split = CanarySplit("fraud", 30)
    with httpx.Client() as client:
        answers = [predict(client, gateway.url, row) for row in ROWS[:300]]
    assert all(a.status_code == 200 for a in answers)
    variants = [a.headers["x-gateway-variant"] for a in answers]
    expected = [split.choose(row["instance"]["customer_id"]) for row in ROWS[:300]]
    assert variants == expected  # the same key lands on the same variant, computed anywhere
    served = {a.headers["x-gateway-variant"]: a.headers["x-gateway-served-by"] for a in answers}
    assert served == {"primary": "fraud-v1", "canary": "fraud-v2"}
    share = variants.count("canary") / len(variants)
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 300)
    # A reload builds a new router: every key keeps its variant.
    assert httpx.post(f"{gateway.url}/admin/reload", headers=ADMIN).status_code == 200
    with httpx.Client() as client:
        again = [
            predict(client, gateway.url, row).headers["x-gateway-variant"] for row in ROWS[:300]
        ]
    assert again == variants


def test_variant_override_header(servers: dict[str, str], gateway_for: Any) -> None:
    gateway, _ = gateway_for(config_text(servers, weight=0, override=True))
    with httpx.Client() as client:
        forced = predict(client, gateway.url, ROWS[0], **{"x-gateway-variant": "canary"})
        wrong = predict(client, gateway.url, ROWS[0], **{"x-gateway-variant": "blue"})
    assert forced.headers["x-gateway-served-by"] == "fraud-v2"
    assert wrong.status_code == 400 and "x-gateway-variant" in wrong.json()["error"]


class Load:
    """Requests in a background thread until stopped; records (time, status, variant)."""

    def __init__(self, url: str) -> None:
        self.url, self.results, self._stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client() as client:
            i = 0
            while not self._stop.is_set():
                try:
                    answer = predict(client, self.url, ROWS[i % len(ROWS)])
                    self.results.append(
                        (
                            time.monotonic(),
                            answer.status_code,
                            answer.headers.get("x-gateway-variant"),
                        )
                    )
                except httpx.HTTPError:
                    self.results.append((time.monotonic(), 0, None))
                i += 1
                time.sleep(0.005)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def test_a_reload_under_load_applies_within_two_seconds_with_no_failed_request(
    servers: dict[str, str], gateway_for: Any
) -> None:
    gateway, path = gateway_for(config_text(servers, weight=0))
    with Load(gateway.url) as load:
        time.sleep(0.5)
        changed_at = time.monotonic()
        save_by_rename(path, config_text(servers, weight=100))
        time.sleep(2.5)
    assert load.results and all(status == 200 for _, status, _ in load.results)
    after = [(t, v) for t, _, v in load.results if t > changed_at]
    first_canary = min(t for t, v in after if v == "canary")
    assert first_canary - changed_at < 2.0
    assert all(v == "canary" for t, v in after if t > first_canary)
    status = httpx.get(f"{gateway.url}/admin/status", headers=ADMIN).json()
    assert status["models"]["fraud"]["routing"]["canary_weight_percent"] == 100
    assert status["config"]["reload"]["applied"] >= 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda text: text + "models: [\n", "not valid YAML"),
        (lambda text: text.replace("routing:", "routeing:"), "unknown key"),
        (lambda text: text.replace("weight: 0", "weight: 130"), "weight"),
        (lambda text: text.replace("models/fraud-v1\n", "models/no-such-model\n", 1), "card"),
    ],
    ids=["invalid-yaml", "unknown-key", "bad-weight", "missing-model-file"],
)
def test_an_invalid_change_is_refused_and_the_running_config_stays(
    servers: dict[str, str], gateway_for: Any, mutate: Any, message: str
) -> None:
    text = config_text(servers, weight=0)
    gateway, path = gateway_for(text)
    bad = mutate(text)
    assert bad != text
    path.write_text(bad)
    refused = httpx.post(f"{gateway.url}/admin/reload", headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["applied"] is False
    assert message in json.dumps(refused.json()["reload"]["last_error"])
    with httpx.Client() as client:
        answers = [predict(client, gateway.url, row) for row in ROWS[:20]]
    assert all(
        a.status_code == 200 and a.headers["x-gateway-variant"] == "primary" for a in answers
    )
    status = httpx.get(f"{gateway.url}/admin/status", headers=ADMIN).json()
    assert status["config"]["reload"]["rejected"] >= 1
    assert "fraud_rejected" not in status  # the running config is the old one
    assert status["models"]["fraud"]["routing"]["canary_weight_percent"] == 0


def test_the_admin_api_needs_the_token(servers: dict[str, str], gateway_for: Any) -> None:
    gateway, _ = gateway_for(config_text(servers))
    assert httpx.get(f"{gateway.url}/admin/status").status_code == 401
    assert (
        httpx.post(
            f"{gateway.url}/admin/reload", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def timed(client: httpx.Client, url: str, rows: list[dict[str, Any]]) -> list[float]:
    latencies = []
    for row in rows:
        started = time.perf_counter()
        answer = predict(client, url, row)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200
        assert answer.headers["x-gateway-served-by"] == "fraud-v1"
    return latencies


def test_a_slow_shadow_does_not_slow_clients_and_its_drops_are_counted(
    servers: dict[str, str], gateway_for: Any
) -> None:
    gateway, path = gateway_for(config_text(servers, shadow="slow", sample=0, queue=4))
    with httpx.Client() as client:
        timed(client, gateway.url, ROWS[:20])  # warm up
        without = timed(client, gateway.url, ROWS[20:120])
        assert httpx.post(f"{gateway.url}/admin/reload", headers=ADMIN).status_code == 200
        save_by_rename(path, config_text(servers, shadow="slow", sample=100, queue=4))
        assert httpx.post(f"{gateway.url}/admin/reload", headers=ADMIN).status_code == 200
        with_shadow = timed(client, gateway.url, ROWS[120:220])
    assert p99(with_shadow) < p99(without) * 2 + 0.050  # a 2 s shadow would add seconds
    shadow = httpx.get(f"{gateway.url}/admin/status", headers=ADMIN).json()["models"]["fraud"][
        "shadows"
    ][0]
    assert shadow["dropped"] > 50  # two workers held for 2 s each, a queue of 4
    # Every sampled copy was sent, dropped, or still waits in the queue of 4.
    assert 100 - 4 <= shadow["sent"] + shadow["dropped"] <= 100


def test_a_failing_shadow_changes_nothing_for_clients(
    servers: dict[str, str], gateway_for: Any
) -> None:
    gateway, _ = gateway_for(config_text(servers, shadow="broken", sample=100))
    with httpx.Client() as client:
        answers = [predict(client, gateway.url, row) for row in ROWS[:30]]
    assert all(
        a.status_code == 200 and a.headers["x-gateway-served-by"] == "fraud-v1" for a in answers
    )
    time.sleep(0.3)
    shadow = httpx.get(f"{gateway.url}/admin/status", headers=ADMIN).json()["models"]["fraud"][
        "shadows"
    ][0]
    assert shadow["failed"] >= 5 and shadow["comparison"]["pairs"] == 0
    assert shadow["breaker"] == "open" and shadow["skipped_breaker_open"] > 0, shadow


def direct_scores(client: httpx.Client, url: str, rows: list[dict[str, Any]]) -> list[float]:
    scores = []
    for row in rows:
        answer = predict(client, url.replace("/v1/models/fraud:predict", ""), row)
        scores.append(answer.json()["predictions"][0]["score"])
    return scores


def test_paired_comparison_matches_a_hand_computation(
    servers: dict[str, str], gateway_for: Any, tmp_path: Path
) -> None:
    served_gw, _ = gateway_for(config_text(servers, shadow="v2", sample=100))
    rows = ROWS[:60]
    with httpx.Client() as client:
        served = [
            predict(client, served_gw.url, row).json()["predictions"][0]["score"] for row in rows
        ]
        deadline = time.monotonic() + 10
        while True:
            status = httpx.get(f"{served_gw.url}/admin/status", headers=ADMIN).json()
            comparison = status["models"]["fraud"]["shadows"][0]["comparison"]
            if comparison["pairs"] == len(rows) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    # What v2 answers for the same rows, asked through a gateway whose primary is v2.
    (tmp_path / "v2").mkdir()
    text = config_text({**servers, "v1": servers["v2"]})
    v2_path = tmp_path / "v2" / "gateway.yaml"
    v2_path.write_text(text)
    with (
        GatewayThread(load_config(v2_path), InMemorySpanExporter()) as v2_gw,
        httpx.Client() as client,
    ):
        shadow = [predict(client, v2_gw.url, row).json()["predictions"][0]["score"] for row in rows]
    diffs = [abs(a - b) for a, b in zip(served, shadow, strict=True)]
    agree = sum((a >= 0.5) == (b >= 0.5) for a, b in zip(served, shadow, strict=True)) / len(rows)
    assert comparison["pairs"] == len(rows)
    assert comparison["mean_abs_diff"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-9)
    assert comparison["max_abs_diff"] == pytest.approx(max(diffs), abs=1e-9)
    assert comparison["label_agreement"] == pytest.approx(agree)
    metrics = httpx.get(f"{served_gw.url}/metrics").text
    assert (
        'gateway_shadow_requests_total{model="fraud",result="compared",shadow="fraud-shadow"} 60.0'
        in metrics
    )
    assert 'gateway_shadow_psi{model="fraud",shadow="fraud-shadow"}' in metrics
